package plots

import (
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// BarPanel is one panel of a bar grid: one bar per server.
type BarPanel struct {
	Title string
	// Values are the servers' shares of connections, in percent.
	Values []float64
	// Even is the share every server would have if the spread were
	// perfect, drawn as a dashed red line (which the caption must say).
	Even float64
}

// SpreadBars draws a grid of bar panels, rows × cols in row order, and
// writes it as a PNG. Panels in one column share their y scale, so that
// setups with the same number of listeners compare by eye.
func SpreadBars(path string, cols int, panels []BarPanel) error {
	if cols < 1 || len(panels) == 0 || len(panels)%cols != 0 {
		return fmt.Errorf("plots: %d panels do not fill rows of %d", len(panels), cols)
	}
	top := make([]float64, cols)
	for i, p := range panels {
		for _, v := range append([]float64{p.Even}, p.Values...) {
			top[i%cols] = math.Max(top[i%cols], v)
		}
	}
	rows := len(panels) / cols
	grid := make([][]*plot.Plot, rows)
	for i, bp := range panels {
		p := plot.New()
		p.Title.Text = bp.Title
		p.Title.TextStyle.Font.Size = vg.Points(10)
		p.Y.Label.Text = "% of connections"
		p.X.Label.Text = "server"
		p.Y.Min, p.Y.Max = 0, top[i%cols]*1.12
		p.Y.Tick.Marker = plainTicks
		bars, err := plotter.NewBarChart(plotter.Values(bp.Values), vg.Points(14))
		if err != nil {
			return err
		}
		bars.Color = blue
		bars.LineStyle.Width = 0
		p.Add(bars)
		names := make([]string, len(bp.Values))
		for j := range names {
			names[j] = fmt.Sprint(j)
		}
		p.NominalX(names...)
		even, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: bp.Even}, {X: float64(len(bp.Values)) - 0.5, Y: bp.Even}})
		if err != nil {
			return err
		}
		even.LineStyle = draw.LineStyle{Color: red, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
		p.Add(even)
		grid[i/cols] = append(grid[i/cols], p)
	}
	return saveGrid(path, vg.Length(cols)*75*vg.Millimeter, vg.Length(rows)*55*vg.Millimeter, grid)
}

// plainTicks are gonum's default ticks labelled without trailing zeros.
var plainTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = strconv.FormatFloat(t.Value, 'f', -1, 64)
		}
	}
	return ticks
})
