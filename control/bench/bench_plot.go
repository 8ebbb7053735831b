package bench

import (
	"errors"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot draws r's headline figures as a grouped bar chart and saves it
// to file (the format follows the extension: .png, .svg, .pdf): one group
// per workload, one bar per variant, the median relative to the median of
// `off` (or of the first variant run without `off`), with whiskers from the
// minimum to the maximum round.
func Plot(r *Result, file string) error {
	if len(r.Summary) == 0 {
		return errors.New("plot: the result has no figures")
	}
	base := VariantOff
	if _, ok := r.Figure(r.Config.Workloads[0], benchMetrics[r.Config.Workloads[0]][0].Key, base); !ok {
		base = r.Variants[0]
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("nswire bench, %s: median of %d rounds × %s, relative to %s (whiskers: min–max)", r.Config.FamilyName(), r.Config.Rounds, r.Config.Duration, base)
	p.Y.Label.Text = "× " + base + " (higher is better)"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true

	nv := len(r.Variants)
	const barWidth = 14
	var ticks []plot.Tick
	bars := make([]*plotter.BarChart, nv)
	x, ymax := 0.0, 0.0
	for _, w := range r.Config.Workloads {
		md := benchMetrics[w][0]
		b, ok := r.Figure(w, md.Key, base)
		if !ok || b.Median == 0 {
			continue
		}
		groupStart := x
		for i, v := range r.Variants {
			f, ok := r.Figure(w, md.Key, v)
			if !ok {
				x++
				continue
			}
			bc, err := plotter.NewBarChart(plotter.Values{f.Median / b.Median}, vg.Points(barWidth))
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			bc.XMin = x
			bc.Color = plotutil.Color(i)
			bc.LineStyle.Width = 0
			p.Add(bc)
			if bars[i] == nil {
				bars[i] = bc
			}
			eb, err := plotter.NewYErrorBars(whisker{x: x, y: f.Median / b.Median, lo: (f.Median - f.Min) / b.Median, hi: (f.Max - f.Median) / b.Median})
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			eb.Color = color.Black
			p.Add(eb)
			ymax = max(ymax, f.Max/b.Median)
			x++
		}
		ticks = append(ticks, plot.Tick{Value: (groupStart + x - 1) / 2, Label: fmt.Sprintf("%s (%s)", w, md.Unit)})
		x++ // a gap between groups
	}
	for i, bc := range bars {
		if bc != nil {
			p.Legend.Add(r.Variants[i], bc)
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = -1, x
	p.Y.Max = ymax * 1.3 // room for the legend above the bars
	line := plotter.NewFunction(func(float64) float64 { return 1 })
	line.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	line.Color = color.Gray{Y: 128}
	p.Add(line)
	width := vg.Length(float64(x+2)*barWidth*1.4) * vg.Points(1)
	width = max(width, 7*vg.Inch)
	if err := p.Save(width, 4.5*vg.Inch, file); err != nil {
		return fmt.Errorf("save plot %s: %w", file, err)
	}
	return nil
}

// whisker is one error bar for plotter.NewYErrorBars.
type whisker struct{ x, y, lo, hi float64 }

func (w whisker) Len() int                      { return 1 }
func (w whisker) XY(int) (float64, float64)     { return w.x, w.y }
func (w whisker) YError(int) (float64, float64) { return w.lo, w.hi }
