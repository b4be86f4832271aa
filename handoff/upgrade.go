package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"
)

// upgrade starts this program's executable, as the file on disk now is,
// with the same arguments and environment, and waits at most timeout for
// it to take over. It reports whether it did; if not, this process goes
// on serving, and the log and systemd's STATUS= say why.
func (g *generation) upgrade(ctx context.Context, log *slog.Logger, sig os.Signal, timeout time.Duration) bool {
	begun := time.Now()
	log.Info("handoff: upgrading: starting a successor", "signal", sig)
	if os.Getenv("INVOCATION_ID") != "" && g.notify == nil {
		// systemd without notifications: Type=simple or exec, where the
		// exit of this process is the end of the service.
		g.upgradeFailed(log, errors.New("systemd runs this process without NOTIFY_SOCKET (Type=simple or exec), "+
			"so it would take this process's exit for the end of the service and stop the successor; use Type=notify or Type=notify-reload"))
		return false
	}
	g.notify.send(reloading("upgrading: starting a successor"))
	exe, err := os.Executable()
	if err != nil {
		g.upgradeFailed(log, fmt.Errorf("finding this program's executable: %w", err))
		return false
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		g.upgradeFailed(log, fmt.Errorf("starting %s: %w", exe, err))
		return false
	}
	pid := cmd.Process.Pid
	log.Info("handoff: upgrading: successor started", "successor_pid", pid, "exe", exe)
	g.notify.send(fmt.Sprintf("STATUS=upgrading: waiting for pid %d to serve", pid))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	waited := false
	select {
	case <-g.successor():
		stats.upgrades.Add(1)
		log.Info("handoff: upgraded", "successor_pid", pid, "duration", time.Since(begun).Round(time.Microsecond))
		return true
	case err = <-exited:
		waited = true
		err = fmt.Errorf("the successor (pid %d) exited before it served: %v", pid, err)
	case <-timer.C:
		err = fmt.Errorf("the successor (pid %d) did not serve within RunConfig.ShutdownTimeout (%v); killed it", pid, timeout)
	case <-ctx.Done():
		err = fmt.Errorf("the context ended while pid %d started; killed it", pid)
	}
	if !waited {
		cmd.Process.Kill()
		<-exited
	}
	// It may have taken over in its last moment; then it has the sockets,
	// and this process must go.
	select {
	case <-g.successor():
		stats.upgrades.Add(1)
		return true
	default:
	}
	g.upgradeFailed(log, err)
	return false
}

func (g *generation) upgradeFailed(log *slog.Logger, err error) {
	stats.failedUpgrades.Add(1)
	log.Error("handoff: upgrade failed; still serving", "err", err)
	// READY=1 ends the reload systemd began with RELOADING=1.
	g.notify.send("READY=1\nSTATUS=upgrade failed, still serving: " + err.Error())
}
