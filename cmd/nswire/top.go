package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/nswire/nswire/control/datapath"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
)

// topSortKeys are the sort keys of nswire top, in the order 's' cycles them.
var topSortKeys = []string{"name", "rx", "tx", "total", "drops"}

// topHistory is how many rate samples each container keeps for its sparkline.
const topHistory = 120

// sparkLevels are the sparkline's bars, lowest first. The lowest means no
// traffic at all: any traffic gets at least the second.
var sparkLevels = []rune("▁▂▃▄▅▆▇█")

type topOptions struct {
	interval time.Duration
	sort     string
}

func (o *topOptions) validate() error {
	if o.interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %s is too short: give at least 100ms", o.interval)
	}
	if sortIndex(o.sort) < 0 {
		return fmt.Errorf("--sort %q is not a sort key: use %s", o.sort, joinOr(topSortKeys))
	}
	return nil
}

func sortIndex(key string) int {
	for i, k := range topSortKeys {
		if k == key {
			return i
		}
	}
	return -1
}

func newTopCmd(g *globalFlags) *cobra.Command {
	o := &topOptions{}
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Full-screen live view of the traffic of all attached containers",
		Long: `Show every attached container on one screen, refreshed every --interval:
address, mode, receive and send rates (rx is traffic to the container, tx
traffic from it), totals, packets (rx+tx), fast-pathed packets, spoof-guard
drops, and a sparkline of the container's rx+tx byte rate. Sizes are in
IEC units (K = KiB, M = MiB); packet counts in SI units (k = 1000).

Keys: q quit · s next sort key · r reverse the order · p pause/resume ·
↑/↓ (k/j) select a container · f show or hide the selected container's
flows (who it talks to, busiest first, with rates; see nswire flows).

nswire top needs a terminal (80×24 is enough, also over ssh); to log the
counters to a file or a pipe use ` + "`nswire stats -w`" + `.`,
		Example:           "  nswire top\n  nswire top --sort rx --interval 500ms",
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		PreRunE:           func(*cobra.Command, []string) error { return o.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if !isTerminal(out) {
				return errors.New("stdout is not a terminal: top draws a full-screen view; for a log of the counters use `nswire stats -w` (or `nswire stats -w -o json`)")
			}
			return g.withManager(cmd, func(m *control.Manager) error {
				ctx := cmd.Context()
				fetch := func(ctx context.Context) ([]control.EndpointStats, error) { return m.Stats(ctx, nil) }
				model := newTopModel(ctx, fetch, o)
				model.flowFetch = func(ctx context.Context, id string) (*control.FlowReport, error) { return m.Flows(ctx, []string{id}) }
				p := tea.NewProgram(model, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithOutput(out))
				if _, err := p.Run(); err != nil {
					if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
						return nil // Ctrl-C or SIGTERM outside the terminal
					}
					return fmt.Errorf("run nswire top: %w", err)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.interval, "interval", time.Second, "refresh interval (at least 100ms)")
	f.StringVar(&o.sort, "sort", "name", "sort key: "+joinOr(topSortKeys))
	cmd.RegisterFlagCompletionFunc("sort", oneOf(topSortKeys...))
	return cmd
}

// topFetch reads one snapshot of all attached containers.
type topFetch func(context.Context) ([]control.EndpointStats, error)

// topStatsMsg is one snapshot read by topFetch, or the error reading it.
type topStatsMsg struct {
	stats []control.EndpointStats
	flows *control.FlowReport // of the selected container, when the flow view is on
	err   error
}

// topFlowFetch reads the flows of one container.
type topFlowFetch func(ctx context.Context, id string) (*control.FlowReport, error)

// topTickMsg says it is time to read the next snapshot.
type topTickMsg time.Time

// topModel is nswire top's bubbletea model. Its View depends on nothing but
// the model, so tests drive it with fake snapshots and window sizes.
type topModel struct {
	ctx      context.Context
	fetch    topFetch
	interval time.Duration

	width, height int
	sortKey       int
	reverse       bool
	paused        bool

	flowFetch topFlowFetch
	sel       int    // the selected row, in the current order
	selID     string // its container, kept across re-sorting
	showFlows bool
	flows     *control.FlowReport // the selected container's flows, with rates

	loaded  bool
	cur     []control.EndpointStats // the last snapshot, with rates
	history map[string][]float64    // container ID → rx+tx bytes/s, oldest first
	err     error                   // of the last read, cleared by a good one
}

func newTopModel(ctx context.Context, fetch topFetch, o *topOptions) *topModel {
	k := sortIndex(o.sort)
	if k < 0 {
		k = 0
	}
	return &topModel{
		ctx: ctx, fetch: fetch, interval: o.interval,
		width: 80, height: 24, sortKey: k,
		history: map[string][]float64{},
	}
}

// Init reads the first snapshot at once.
func (m *topModel) Init() tea.Cmd { return m.read }

// read is the tea.Cmd that reads one snapshot.
func (m *topModel) read() tea.Msg {
	s, err := m.fetch(m.ctx)
	msg := topStatsMsg{stats: s, err: err}
	if err == nil && m.showFlows && m.flowFetch != nil && m.selID != "" {
		msg.flows, msg.err = m.flowFetch(m.ctx, m.selID)
	}
	return msg
}

// tick waits one interval. Exactly one read or tick is pending at any time:
// a read is followed by a tick, a tick by a read (or, paused, another tick).
func (m *topModel) tick() tea.Cmd {
	return tea.Tick(m.interval, func(t time.Time) tea.Msg { return topTickMsg(t) })
}

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "Q", "ctrl+c", "esc":
			return m, tea.Quit
		case "s":
			m.sortKey = (m.sortKey + 1) % len(topSortKeys)
		case "S":
			m.sortKey = (m.sortKey + len(topSortKeys) - 1) % len(topSortKeys)
		case "r":
			m.reverse = !m.reverse
		case "p", " ":
			m.paused = !m.paused
		case "up", "k":
			m.selectRow(m.sel - 1)
		case "down", "j":
			m.selectRow(m.sel + 1)
		case "f", "enter":
			m.showFlows = !m.showFlows && m.flowFetch != nil
			m.flows = nil
			if m.showFlows {
				return m, m.read // show them now, not after the next tick
			}
		}
	case topTickMsg:
		if m.paused {
			return m, m.tick()
		}
		return m, m.read
	case topStatsMsg:
		if !m.paused {
			m.apply(msg)
		}
		return m, m.tick()
	}
	return m, nil
}

// apply takes in one snapshot: rates from the previous one, a history sample
// per container that has both rates, and history dropped for containers
// that are gone. A failed read keeps the last snapshot and shows the error.
func (m *topModel) apply(msg topStatsMsg) {
	if msg.err != nil {
		m.err = msg.err
		return
	}
	m.err = nil
	next := control.WithRates(m.cur, msg.stats)
	seen := make(map[string]bool, len(next))
	for _, s := range next {
		seen[s.ID] = true
		if s.RXRate == nil || s.TXRate == nil {
			continue
		}
		h := append(m.history[s.ID], s.RXRate.BytesPerSec+s.TXRate.BytesPerSec)
		if len(h) > topHistory {
			h = h[len(h)-topHistory:]
		}
		m.history[s.ID] = h
	}
	for id := range m.history {
		if !seen[id] {
			delete(m.history, id)
		}
	}
	m.cur, m.loaded = next, true
	if msg.flows != nil {
		control.WithFlowRates(m.flows, msg.flows)
		control.SortFlows(msg.flows.Flows, "bytes")
		m.flows = msg.flows
	}
	m.selectRow(-1)
}

// selectRow selects row i of the current order (clamped); i < 0 keeps the
// selected container, wherever it sorts now.
func (m *topModel) selectRow(i int) {
	rows := m.sorted()
	if len(rows) == 0 {
		m.sel, m.selID = 0, ""
		return
	}
	if i < 0 {
		i = 0
		for k, r := range rows {
			if r.ID == m.selID {
				i = k
			}
		}
	}
	i = min(max(i, 0), len(rows)-1)
	if rows[i].ID != m.selID {
		m.flows = nil // another container's flows
	}
	m.sel, m.selID = i, rows[i].ID
}

// sorted returns the last snapshot in the current order: numeric keys
// busiest first, ties and the name key A to Z; reversed, exactly the other
// way round.
func (m *topModel) sorted() []control.EndpointStats {
	out := append([]control.EndpointStats(nil), m.cur...)
	key := topSortKeys[m.sortKey]
	less := func(a, b control.EndpointStats) bool {
		if key != "name" {
			if va, vb := sortValue(a, key), sortValue(b, key); va != vb {
				return va > vb
			}
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ID < b.ID
	}
	sort.SliceStable(out, func(i, j int) bool {
		if m.reverse {
			return less(out[j], out[i])
		}
		return less(out[i], out[j])
	})
	return out
}

// sortValue is a's value for a numeric sort key; containers not counted
// sort below all counted ones.
func sortValue(s control.EndpointStats, key string) float64 {
	if !s.Counted {
		return -1
	}
	switch key {
	case "rx":
		if s.RXRate != nil {
			return s.RXRate.BytesPerSec
		}
	case "tx":
		if s.TXRate != nil {
			return s.TXRate.BytesPerSec
		}
	case "total":
		return float64(s.RX.Bytes + s.TX.Bytes)
	case "drops":
		return float64(sumDrops(s.Drops))
	}
	return 0
}

// topColumn is one column of the table: its title, its cells and how it
// fits.
type topColumn struct {
	title    string
	right    bool // right-aligned (numbers)
	fixed    bool // as wide as the widest compact number, so rates do not jiggle
	cells    []string
	width    int
	optional int // 0 never dropped; else dropped in this order when narrow
}

const (
	topGap      = 1  // spaces between columns
	topNameMin  = 10 // NAME is not cut shorter while other columns can go
	topNameMax  = 24 // nor shown wider
	topSparkMin = 6  // below this the sparkline column is dropped
)

// View renders the screen: a title line, the column header, at most
// height-4 rows, a "+N more" line when some did not fit, and a status line.
// Every line fits the width.
func (m *topModel) View() string {
	w, h := m.width, m.height
	if w <= 0 {
		w = 80
	}
	if h <= 0 {
		h = 24
	}
	rows := m.sorted()
	flowLines := m.flowView(w, h)
	maxRows := max(h-4-len(flowLines), 1)
	more := 0
	if len(rows) > maxRows {
		rows, more = rows[:maxRows], len(rows)-maxRows
	}

	var lines []string
	lines = append(lines, lipgloss.NewStyle().Bold(true).Render(fitLine(m.title(w), w)))
	cols, sparkW := m.layout(rows, w)
	lines = append(lines, lipgloss.NewStyle().Reverse(true).Render(pad(m.renderRow(cols, rows, -1, sparkW), w, false)))
	switch {
	case !m.loaded && m.err == nil:
		lines = append(lines, fitLine("reading counters…", w))
	case m.loaded && len(m.cur) == 0:
		lines = append(lines, fitLine("no attached containers — nswire attach NAME", w))
	}
	for i := range rows {
		line := fitLine(m.renderRow(cols, rows, i, sparkW), w)
		if m.showFlows && rows[i].ID == m.selID {
			line = lipgloss.NewStyle().Bold(true).Render("›" + strings.TrimPrefix(line, " "))
		}
		lines = append(lines, line)
	}
	if more > 0 {
		lines = append(lines, fitLine(fmt.Sprintf("+%d more", more), w))
	}
	lines = append(lines, flowLines...)
	lines = append(lines, m.status(w))
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// title is the header line: count, interval, sort key and the keys' help.
func (m *topModel) title(w int) string {
	n := len(m.cur)
	count := fmt.Sprintf("%d containers", n)
	if n == 1 {
		count = "1 container"
	}
	every := "every " + m.interval.String()
	if m.paused {
		every = "PAUSED"
	}
	arrow := "↓"
	if (topSortKeys[m.sortKey] == "name") != m.reverse {
		arrow = "↑"
	}
	left := strings.Join([]string{count, every, "sort " + topSortKeys[m.sortKey] + " " + arrow}, " · ")
	for _, help := range []string{"q quit · s sort · r reverse · p pause · ↑↓ f flows", "q quit · s sort · r reverse · p pause"} {
		if lipgloss.Width(left)+3+lipgloss.Width(help) <= w {
			return left + " · " + help
		}
	}
	return left
}

// status is the last line: the error of the last read, or when and what the
// numbers are.
func (m *topModel) status(w int) string {
	switch {
	case m.err != nil:
		return lipgloss.NewStyle().Foreground(lipgloss.Color("9")).Render(fitLine("error: "+m.err.Error()+" (retrying)", w))
	case m.paused:
		return lipgloss.NewStyle().Faint(true).Render(fitLine("paused — p to resume", w))
	case !m.loaded || len(m.cur) == 0:
		return ""
	}
	return lipgloss.NewStyle().Faint(true).Render(fitLine(fmt.Sprintf("%s · rx = to the container, tx = from it · K/M = KiB/MiB",
		m.cur[0].Time.Format("15:04:05")), w))
}

// layout builds the columns of rows and fits them into width w: NAME shrinks
// to topNameMin, then MODE is shortened, then the sparkline goes, then the
// optional columns in order. It returns the columns kept and the sparkline's width (0: none).
func (m *topModel) layout(rows []control.EndpointStats, w int) ([]topColumn, int) {
	// ADDRESS6 only when a row is dual stack; it is the first to go.
	dual := false
	for _, s := range rows {
		dual = dual || s.Address6 != ""
	}
	cols := []topColumn{
		{title: "NAME"},
		{title: "ADDRESS", optional: 8},
		{title: "ADDRESS6", optional: 1},
		{title: "MODE", optional: 4},
		{title: "RX/s", right: true, fixed: true},
		{title: "TX/s", right: true, fixed: true, optional: 7},
		{title: "RX TOT", right: true, fixed: true, optional: 6},
		{title: "TX TOT", right: true, fixed: true, optional: 5},
		{title: "PKTS", right: true, optional: 9},
		{title: "FP", right: true, optional: 2},
		{title: "DROPS", right: true, optional: 3},
	}
	for _, s := range rows {
		addr, _, _ := strings.Cut(s.Address, "/")
		addr6, _, _ := strings.Cut(s.Address6, "/")
		cells := []string{s.Name, addr, addr6, s.Mode}
		if s.Counted {
			cells = append(cells,
				compactRate(s.RXRate), compactRate(s.TXRate),
				compactBytes(float64(s.RX.Bytes)), compactBytes(float64(s.TX.Bytes)),
				compactCount(s.RX.Packets+s.TX.Packets), compactCount(s.Fastpathed.Packets),
				compactCount(sumDrops(s.Drops)))
		} else {
			cells = append(cells, "-", "-", "-", "-", "-", "-", "-")
		}
		for i := range cols {
			cols[i].cells = append(cols[i].cells, cells[i])
		}
	}
	if !dual {
		cols = append(cols[:2], cols[3:]...)
	}
	for i := range cols {
		c := &cols[i]
		c.width = lipgloss.Width(c.title)
		for _, s := range c.cells {
			c.width = max(c.width, lipgloss.Width(s))
		}
		if c.fixed {
			c.width = max(c.width, 5) // a compact number is at most 5 wide
		}
	}
	nameNat := min(cols[0].width, topNameMax)
	nameMin := min(nameNat, topNameMin)
	fits := func(spark bool) (nameW, sparkW int, ok bool) {
		rest := w
		for _, c := range cols[1:] {
			rest -= c.width + topGap
		}
		if spark {
			// NAME, the others, a gap, the sparkline.
			rest -= topGap
			if rest-nameMin < topSparkMin {
				return 0, 0, false
			}
			nameW = min(nameNat, rest-topSparkMin)
			return nameW, min(rest-nameW, topHistory), true
		}
		return min(nameNat, rest), 0, rest >= nameMin
	}
	if nameW, sparkW, ok := fits(true); ok {
		cols[0].width = nameW
		return cols, sparkW
	}
	shortModes(cols)
	if nameW, sparkW, ok := fits(true); ok {
		cols[0].width = nameW
		return cols, sparkW
	}
	const lastDrop = 9 // the highest optional
	for drop := 1; ; drop++ {
		nameW, _, ok := fits(false)
		if ok || drop > lastDrop {
			cols[0].width = max(nameW, 1)
			return cols, 0
		}
		for i, c := range cols {
			if c.optional == drop {
				cols = append(cols[:i], cols[i+1:]...)
				break
			}
		}
	}
}

// shortModes shortens the MODE column's observe and fastpath to obs and
// fast.
func shortModes(cols []topColumn) {
	for i := range cols {
		if cols[i].title != "MODE" {
			continue
		}
		c := &cols[i]
		c.width = lipgloss.Width(c.title)
		for j, s := range c.cells {
			switch s {
			case string(datapath.Observe):
				c.cells[j] = "obs"
			case string(datapath.Fastpath):
				c.cells[j] = "fast"
			}
			c.width = max(c.width, lipgloss.Width(c.cells[j]))
		}
	}
}

// renderRow renders row i of rows in cols (the header for i < 0), then the
// sparkline column when sparkW > 0. A row that is not counted shows "-" for
// its rates and "not counted (mode off)" across the rest.
func (m *topModel) renderRow(cols []topColumn, rows []control.EndpointStats, i, sparkW int) string {
	var b strings.Builder
	rest := sparkW // width of the columns not yet written, gaps included
	if sparkW > 0 {
		rest += topGap
	}
	for _, c := range cols {
		rest += c.width + topGap
	}
	rest -= topGap
	numbers := 0
	for j, c := range cols {
		if j > 0 {
			b.WriteString(strings.Repeat(" ", topGap))
			rest -= topGap
		}
		if c.right {
			numbers++
		}
		if i >= 0 && !rows[i].Counted && numbers > 2 {
			b.WriteString(pad(notCounted(rows[i]), rest, false))
			return b.String()
		}
		s := c.title
		if i >= 0 {
			s = c.cells[i]
		}
		if j == 0 && i >= 0 {
			s = cutMiddle(s, c.width)
		}
		b.WriteString(pad(s, c.width, c.right))
		rest -= c.width
	}
	if sparkW <= 0 {
		return b.String()
	}
	b.WriteString(strings.Repeat(" ", topGap))
	switch {
	case i < 0 && sparkW >= len("RX+TX HISTORY"):
		b.WriteString(pad("RX+TX HISTORY", sparkW, false))
	case i < 0 && sparkW >= len("HISTORY"):
		b.WriteString(pad("HISTORY", sparkW, false))
	case i < 0:
		b.WriteString(pad("HIST", sparkW, false))
	case !rows[i].Counted:
		b.WriteString(pad("not counted", sparkW, false))
	default:
		b.WriteString(sparkline(m.history[rows[i].ID], sparkW))
	}
	return b.String()
}

// pad cuts s to width w (with "…") and pads it with spaces to w.
func pad(s string, w int, right bool) string {
	if lipgloss.Width(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	fill := strings.Repeat(" ", max(w-lipgloss.Width(s), 0))
	if right {
		return fill + s
	}
	return s + fill
}

// cutMiddle cuts s to width w by replacing its middle with "…": names that
// share a prefix (compose projects, benchmarks) stay apart by their ends.
func cutMiddle(s string, w int) string {
	sw := lipgloss.Width(s)
	if sw <= w || w < 5 {
		return s
	}
	head := w / 2
	tail := w - 1 - head
	r := []rune(s)
	end, ew := len(r), 0
	for end > 0 {
		rw := lipgloss.Width(string(r[end-1]))
		if ew+rw > tail {
			break
		}
		end, ew = end-1, ew+rw
	}
	return ansi.Truncate(s, head, "") + "…" + string(r[end:])
}

// fitLine cuts s to width w.
func fitLine(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "…")
}

// sparkline draws the last width values of vals as bars scaled to their
// maximum: ▁ is no traffic, any traffic is at least ▂.
func sparkline(vals []float64, width int) string {
	if width <= 0 || len(vals) == 0 {
		return ""
	}
	if len(vals) > width {
		vals = vals[len(vals)-width:]
	}
	top := 0.0
	for _, v := range vals {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if top > 0 && v > 0 {
			i = max(int(math.Round(v/top*float64(len(sparkLevels)-1))), 1)
		}
		b.WriteRune(sparkLevels[i])
	}
	return b.String()
}

func sumDrops(d map[string]uint64) uint64 {
	var n uint64
	for _, v := range d {
		n += v
	}
	return n
}

// compactBytes formats a byte count in at most 5 columns with IEC units:
// 512B, 1.5K, 87K, 1023K, 4.2M.
func compactBytes(b float64) string {
	if b < 1024 {
		return fmt.Sprintf("%.0fB", b)
	}
	units := "KMGTPE"
	i := -1
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if b < 9.95 {
		return fmt.Sprintf("%.1f%c", b, units[i])
	}
	return fmt.Sprintf("%.0f%c", b, units[i])
}

// compactRate is a byte rate per second in compactBytes' form, "-" when
// there is no rate yet.
func compactRate(r *control.Rate) string {
	if r == nil {
		return "-"
	}
	return compactBytes(r.BytesPerSec)
}

// compactCount formats a count in at most 5 columns: 9999, 12.3k, 456k,
// 7.8M.
func compactCount(n uint64) string {
	if n < 10000 {
		return fmt.Sprint(n)
	}
	v := float64(n)
	units := "kMGTPE"
	i := -1
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if v < 99.95 {
		return fmt.Sprintf("%.1f%c", v, units[i])
	}
	return fmt.Sprintf("%.0f%c", v, units[i])
}

// flowView is the flow panel of the selected container (empty when off):
// a title line, a header and its busiest flows, in at most half the screen.
func (m *topModel) flowView(w, h int) []string {
	if !m.showFlows {
		return nil
	}
	name := m.selID
	for _, r := range m.cur {
		if r.ID == m.selID {
			name = r.Name
		}
	}
	title := "flows of " + name + " (busiest first; f hides)"
	if m.flows == nil {
		return []string{fitLine(title, w), fitLine("reading flows…", w)}
	}
	title += fmt.Sprintf(" · %d flows, %d evicted", len(m.flows.Flows), m.flows.Evicted)
	out := []string{
		lipgloss.NewStyle().Bold(true).Render(fitLine(title, w)),
		lipgloss.NewStyle().Reverse(true).Render(pad(fmt.Sprintf("%-3s %-6s %-28s %-16s %9s %9s %10s", "DIR", "PROTO", "PEER", "PEER NAME", "PKTS", "BYTES", "RATE"), w, false)),
	}
	room := max(h/2-2, 1)
	for i, f := range m.flows.Flows {
		if i == room {
			out = append(out, fitLine(fmt.Sprintf("+%d more (nswire flows %s)", len(m.flows.Flows)-room, name), w))
			break
		}
		peer := endpoint(f.Peer, f.PeerPort)
		if f.ICMPType != nil {
			peer += fmt.Sprintf(" %d/%d", *f.ICMPType, *f.ICMPCode)
		}
		rate := "-"
		if f.Rate != nil {
			rate = compactBytes(f.Rate.BytesPerSec) + "/s"
		}
		out = append(out, fitLine(fmt.Sprintf("%-3s %-6s %-28s %-16s %9s %9s %10s", f.Direction, f.Proto, cutMiddle(peer, 28), cutMiddle(orDash(f.PeerName), 16),
			compactCount(f.Packets), compactBytes(float64(f.Bytes)), rate), w))
	}
	if len(m.flows.Flows) == 0 {
		out = append(out, fitLine("no flows yet", w))
	}
	return out
}
