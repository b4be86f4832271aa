// Package plots draws the benchmark figures as PNG files.
package plots

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours from one palette for every figure: readable on white and for the
// common forms of colour blindness (Okabe–Ito).
var (
	blue   = color.RGBA{0, 114, 178, 255}
	orange = color.RGBA{230, 159, 0, 255}
	red    = color.RGBA{213, 94, 0, 255}
	green  = color.RGBA{0, 158, 115, 255}
	grey   = color.RGBA{120, 120, 120, 255}
)

// dpi makes text readable on a high-density screen and in a README.
const dpi = 110

func init() {
	// A sans face reads better than the default serif at small sizes.
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
}

// saveGrid draws plots as a grid of rows × cols tiles and writes a PNG.
func saveGrid(path string, width, height vg.Length, grid [][]*plot.Plot) error {
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	// A white page: the PNG's default is transparent, unreadable on dark
	// backgrounds.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{
		Rows: len(grid), Cols: len(grid[0]),
		PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 6, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4,
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, row := range grid {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
