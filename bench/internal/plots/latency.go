package plots

import (
	"fmt"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

// Mark is an instant to draw across a timeline, such as a restart.
type Mark struct {
	At    time.Duration // from the start of the run
	Label string
}

// Timeline draws a load run over time as a PNG: latency percentiles of
// each interval's answered requests (log scale), above answered and, on a
// scale of their own, failed requests per second, with marks drawn across
// all three. width is the intervals' width.
func Timeline(path, title string, ivs []loadgen.Interval, width time.Duration, marks []Mark) error {
	if len(ivs) == 0 || width <= 0 {
		return fmt.Errorf("plots: no intervals to draw")
	}
	mid := func(iv loadgen.Interval) float64 { return (iv.At + width/2).Seconds() }
	perSec := float64(time.Second) / float64(width)

	lat := plot.New()
	lat.Title.Text = title
	lat.Y.Label.Text = "latency (ms)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = logTicks{}
	lat.Legend.Top = true
	lat.Legend.Left = true
	lat.Legend.XOffs = 3 * vg.Millimeter
	lat.Add(plotter.NewGrid())
	for _, s := range []struct {
		name  string
		color color.Color
		pick  func(loadgen.Interval) time.Duration
	}{
		{"p50", blue, func(iv loadgen.Interval) time.Duration { return iv.P50 }},
		{"p99", orange, func(iv loadgen.Interval) time.Duration { return iv.P99 }},
		{"max", grey, func(iv loadgen.Interval) time.Duration { return iv.Max }},
	} {
		var xys plotter.XYs
		for _, iv := range ivs {
			// A log scale cannot show an interval without successes; leave
			// a gap there rather than a misleading zero.
			if iv.OK > 0 {
				xys = append(xys, plotter.XY{X: mid(iv), Y: ms(s.pick(iv))})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		l.Color, pts.Color = s.color, s.color
		l.Width = vg.Points(1.5)
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(1.5)
		lat.Add(l, pts)
		lat.Legend.Add(s.name, l)
	}

	// Answered and failed requests each get a panel and a scale of their
	// own: a few dozen failures would be a flat line under thousands of
	// answers.
	counts := func(label string, c color.Color, pick func(loadgen.Interval) int) (*plot.Plot, error) {
		p := plot.New()
		p.Y.Label.Text = label
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		xys := make(plotter.XYs, len(ivs))
		top := 0.0
		for i, iv := range ivs {
			xys[i] = plotter.XY{X: mid(iv), Y: float64(pick(iv)) * perSec}
			top = max(top, xys[i].Y)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Y.Max = max(top, 1) * 1.15
		p.Y.Tick.Marker = plainTicks
		return p, nil
	}
	answered, err := counts("answered per second", green, func(iv loadgen.Interval) int { return iv.OK })
	if err != nil {
		return err
	}
	failed, err := counts("failed per second", red, func(iv loadgen.Interval) int { return iv.Failed })
	if err != nil {
		return err
	}
	failed.X.Label.Text = "seconds since the start of the run"

	// Headroom above the data keeps the legend off the lines.
	var slowest time.Duration
	for _, iv := range ivs {
		slowest = max(slowest, iv.Max)
	}
	lat.Y.Max = ms(slowest) * 8

	span := (ivs[len(ivs)-1].At + width).Seconds()
	panels := []*plot.Plot{lat, answered, failed}
	for _, p := range panels {
		p.X.Min, p.X.Max = 0, span
	}
	labels := lat.Legend.TextStyle
	labels.Font.Size = vg.Points(8)
	lat.Add(marksPlotter{marks: marks, labels: &labels})
	answered.Add(marksPlotter{marks: marks})
	failed.Add(marksPlotter{marks: marks})
	return saveGrid(path, 190*vg.Millimeter, 170*vg.Millimeter, [][]*plot.Plot{{lat}, {answered}, {failed}})
}

func ms(d time.Duration) float64 { return math.Max(float64(d)/float64(time.Millisecond), 1e-3) }

// marksPlotter draws vertical lines across the whole data area, whatever
// its y range, with an optional label at the top.
type marksPlotter struct {
	marks  []Mark
	labels *text.Style
}

func (m marksPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	style := draw.LineStyle{Color: red, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
	for _, mk := range m.marks {
		x := trX(mk.At.Seconds())
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		c.StrokeLine2(style, x, c.Min.Y, x, c.Max.Y)
		if m.labels != nil && mk.Label != "" {
			st := *m.labels
			st.Rotation = math.Pi / 2
			st.XAlign, st.YAlign = text.XRight, text.YTop
			c.FillText(st, vg.Point{X: x - vg.Points(1), Y: c.Max.Y - vg.Points(2)}, mk.Label)
		}
	}
}

// logTicks labels powers of ten and the 2 and 5 between them, which suits
// latencies from tens of microseconds to seconds.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprint(v)})
		}
	}
	return ticks
}
