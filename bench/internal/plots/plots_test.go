package plots_test

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/b93f8b21/reuseport/bench/internal/plots"
	"github.com/b93f8b21/reuseport/internal/test/loadgen"
)

func TestSpreadBars(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spread.png")
	panels := []plots.BarPanel{
		{Title: "a, 2", Values: []float64{49, 51}, Even: 50},
		{Title: "a, 4", Values: []float64{24, 26, 25, 25}, Even: 25},
		{Title: "b, 2", Values: []float64{100, 0}, Even: 50},
		{Title: "b, 4", Values: []float64{0, 0, 100, 0}, Even: 25},
	}
	if err := plots.SpreadBars(path, 2, panels); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
	if err := plots.SpreadBars(path, 3, panels); err == nil {
		t.Error("4 panels in rows of 3: no error")
	}
}

func TestTimeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timeline.png")
	var ivs []loadgen.Interval
	for i := range 10 {
		iv := loadgen.Interval{At: time.Duration(i) * time.Second, OK: 1000, P50: time.Millisecond, P99: 5 * time.Millisecond, Max: 20 * time.Millisecond}
		if i == 4 {
			iv.OK, iv.Failed = 0, 30 // a gap on the log scale must not break the plot
		}
		ivs = append(ivs, iv)
	}
	marks := []plots.Mark{{At: 4200 * time.Millisecond, Label: "restart 1"}, {At: 30 * time.Second, Label: "off the chart"}}
	if err := plots.Timeline(path, "test", ivs, time.Second, marks); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
	if err := plots.Timeline(path, "empty", nil, time.Second, nil); err == nil {
		t.Error("no intervals: no error")
	}
}

// checkPNG decodes the file and checks that it is a picture, not a blank
// page: a plot has dark ink on white.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 300 {
		t.Fatalf("%s is %dx%d, too small to read", path, b.Dx(), b.Dy())
	}
	if white, dark := ink(img); white < b.Dx()*b.Dy()/2 || dark == 0 {
		t.Fatalf("%s: %d white and %d dark pixels; want a white page with ink", path, white, dark)
	}
}

func ink(img image.Image) (white, dark int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			switch {
			case r > 0xf000 && g > 0xf000 && bl > 0xf000:
				white++
			case r < 0x4000 && g < 0x4000 && bl < 0x4000:
				dark++
			}
		}
	}
	return white, dark
}
