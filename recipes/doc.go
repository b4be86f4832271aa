// Package recipes serves apps of three web frameworks, echo, gin and chi,
// so that their restarts lose no request: each file is the recipe that
// docs/recipes/frameworks.md shows, and the tests restart each app under
// a keep-alive load.
//
// The one rule: pass handoff.Run the framework's *http.Server, never
// handoff.Funcs with the framework's own Shutdown, which is plain
// http.Server.Shutdown and loses keep-alive requests on every restart.
//
// This module is not published: it makes the recipes compile against the
// frameworks' real APIs, and tests them.
package recipes
