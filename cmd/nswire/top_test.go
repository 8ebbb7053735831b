package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/datapath"
)

var topT0 = time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)

// fakeEndpoint is one container's counters for a fake snapshot.
type fakeEndpoint struct {
	name    string
	mode    string
	rxBytes uint64
	txBytes uint64
	drops   uint64
}

// snapshot builds the []control.EndpointStats that Manager.Stats would
// return at topT0 + at.
func snapshot(at time.Duration, eps ...fakeEndpoint) []control.EndpointStats {
	var out []control.EndpointStats
	for i, e := range eps {
		mode := e.mode
		if mode == "" {
			mode = string(datapath.Observe)
		}
		s := control.EndpointStats{
			Name: e.name, ID: "id-" + e.name, HostIf: fmt.Sprintf("nsw%d", i),
			Address: fmt.Sprintf("172.17.0.%d/16", 10+i), Mode: mode,
			Time: topT0.Add(at),
		}
		if mode != string(datapath.Off) {
			s.Counted = true
			s.RX = control.Flow{Packets: e.rxBytes / 100, Bytes: e.rxBytes}
			s.TX = control.Flow{Packets: e.txBytes / 100, Bytes: e.txBytes}
			if e.drops > 0 {
				s.Drops = map[string]uint64{"src-ipv4": e.drops}
			}
		}
		out = append(out, s)
	}
	return out
}

// newTestTop returns a model of an 80×24 terminal that has taken snaps in.
func newTestTop(t *testing.T, sortKey string, snaps ...[]control.EndpointStats) *topModel {
	t.Helper()
	m := newTopModel(context.Background(), func(context.Context) ([]control.EndpointStats, error) {
		return nil, errors.New("unexpected read")
	}, &topOptions{interval: time.Second, sort: sortKey})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	for _, s := range snaps {
		m.Update(topStatsMsg{stats: s})
	}
	return m
}

// checkFits fails unless view has at most h lines of at most w columns.
func checkFits(t *testing.T, view string, w, h int) []string {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) > h {
		t.Errorf("view has %d lines, more than %d:\n%s", len(lines), h, view)
	}
	for i, l := range lines {
		if lw := lipgloss.Width(l); lw > w {
			t.Errorf("line %d is %d columns wide, more than %d: %q", i+1, lw, w, l)
		}
	}
	return lines
}

// rowOf returns the line of the table row that starts with name.
func rowOf(lines []string, name string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

func key(s string) tea.KeyMsg {
	switch s {
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func threeContainers(at time.Duration, scale uint64) []control.EndpointStats {
	return snapshot(at,
		fakeEndpoint{name: "web", rxBytes: 2048 * scale, txBytes: 100 * scale},
		fakeEndpoint{name: "db", rxBytes: 10 * 1024 * 1024 * scale, txBytes: 3 * 1024 * 1024 * scale, drops: 2},
		fakeEndpoint{name: "cache-with-a-very-long-container-name", rxBytes: 512 * scale, txBytes: 512 * scale},
		fakeEndpoint{name: "idle", mode: string(datapath.Off)},
	)
}

func TestTopViewFits80x24(t *testing.T) {
	m := newTestTop(t, "name", threeContainers(0, 1), threeContainers(time.Second, 2))
	view := m.View()
	lines := checkFits(t, view, 80, 24)
	t.Logf("\n%s", view)
	for _, want := range []string{
		"4 containers", "every 1s", "sort name", "q quit · s sort · r reverse · p pause",
		"NAME", "ADDRESS", "MODE", "RX/s", "TX/s", "RX TOT", "TX TOT", "PKTS", "FP", "DROPS", "HIST",
		"172.17.0.11 ", "observe", "not counted",
	} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q", want)
		}
	}
	if strings.Contains(view, "/16") {
		t.Errorf("view shows the address prefix:\n%s", view)
	}
	// db received 10 MiB and sent 3 MiB in the second: rates 10M and 3.0M,
	// totals 20M and 6.0M.
	db := rowOf(lines, "db")
	for _, want := range []string{" 10M ", " 3.0M ", " 20M ", " 6.0M "} {
		if !strings.Contains(db, want) {
			t.Errorf("db row %q lacks %q", db, want)
		}
	}
	// web: 2 KiB/s rx, 100 B/s tx.
	if web := rowOf(lines, "web"); !strings.Contains(web, " 2.0K ") || !strings.Contains(web, " 100B ") {
		t.Errorf("web row %q lacks its rates 2.0K and 100B", web)
	}
	// The long name is cut with an ellipsis, not wrapped.
	if !strings.Contains(view, "cache-…r-name ") {
		t.Errorf("long name not cut in its middle to 12 columns:\n%s", view)
	}
	// Mode off: dashes and "not counted".
	idle := rowOf(lines, "idle")
	if !strings.Contains(idle, " off ") || !strings.Contains(idle, " - ") || !strings.Contains(idle, "not counted") {
		t.Errorf("idle row %q does not say it is not counted", idle)
	}
}

func TestTopFirstSnapshotHasNoRates(t *testing.T) {
	m := newTestTop(t, "name", threeContainers(0, 1))
	lines := checkFits(t, m.View(), 80, 24)
	web := rowOf(lines, "web")
	if !strings.Contains(web, " - ") || strings.ContainsAny(web, string(sparkLevels)) {
		t.Errorf("web row %q of the first snapshot shows a rate or a sparkline", web)
	}
}

func TestTopSort(t *testing.T) {
	eps := func(at time.Duration, k uint64) []control.EndpointStats {
		return snapshot(at,
			fakeEndpoint{name: "alpha", rxBytes: 1000 * k, txBytes: 9000 * k},
			fakeEndpoint{name: "bravo", rxBytes: 5000 * k, txBytes: 1000 * k, drops: 7},
			fakeEndpoint{name: "charlie", rxBytes: 3000 * k, txBytes: 5000 * k},
			fakeEndpoint{name: "delta", mode: string(datapath.Off)},
		)
	}
	order := func(m *topModel) string {
		var names []string
		for _, l := range strings.Split(m.View(), "\n")[2:] {
			if f := strings.Fields(l); len(f) > 0 && strings.Contains(l, "172.17.") {
				names = append(names, f[0])
			}
		}
		return strings.Join(names, ",")
	}
	for _, tc := range []struct {
		sort, want, reversed string
	}{
		{"name", "alpha,bravo,charlie,delta", "delta,charlie,bravo,alpha"},
		{"rx", "bravo,charlie,alpha,delta", "delta,alpha,charlie,bravo"},
		{"tx", "alpha,charlie,bravo,delta", "delta,bravo,charlie,alpha"},
		{"total", "alpha,charlie,bravo,delta", "delta,bravo,charlie,alpha"},
		{"drops", "bravo,alpha,charlie,delta", "delta,charlie,alpha,bravo"},
	} {
		t.Run(tc.sort, func(t *testing.T) {
			m := newTestTop(t, tc.sort, eps(0, 1), eps(time.Second, 2))
			if got := order(m); got != tc.want {
				t.Errorf("order = %s, want %s", got, tc.want)
			}
			if !strings.Contains(m.View(), "sort "+tc.sort+" ") {
				t.Errorf("header does not name sort key %s", tc.sort)
			}
			m.Update(key("r"))
			if got := order(m); got != tc.reversed {
				t.Errorf("reversed order = %s, want %s", got, tc.reversed)
			}
		})
	}
}

func TestTopSortKeyCycles(t *testing.T) {
	m := newTestTop(t, "name", threeContainers(0, 1))
	for _, want := range []string{"rx", "tx", "total", "drops", "name", "rx"} {
		m.Update(key("s"))
		if got := topSortKeys[m.sortKey]; got != want {
			t.Fatalf("after s: sort %s, want %s", got, want)
		}
		if !strings.Contains(m.View(), "sort "+want+" ") {
			t.Errorf("header does not show sort %s", want)
		}
	}
}

func TestTopSparklineGrows(t *testing.T) {
	m := newTestTop(t, "name")
	var rx uint64
	prev := -1
	for i := range 30 {
		rx += uint64(1000 * (i%5 + 1))
		m.Update(topStatsMsg{stats: snapshot(time.Duration(i)*time.Second, fakeEndpoint{name: "web", rxBytes: rx})})
		lines := checkFits(t, m.View(), 80, 24)
		row := rowOf(lines, "web")
		n := 0
		for _, r := range row {
			if strings.ContainsRune(string(sparkLevels), r) {
				n++
			}
		}
		switch {
		case i == 0 && n != 0:
			t.Errorf("snapshot 1: sparkline of %d bars before any rate: %q", n, row)
		case i > 0 && n <= prev && n < 8:
			t.Errorf("snapshot %d: sparkline did not grow (%d bars, %d before): %q", i+1, n, prev, row)
		case i > 0 && n < min(i, 8):
			t.Errorf("snapshot %d: sparkline has %d bars, want at least %d: %q", i+1, n, min(i, 8), row)
		}
		prev = n
	}
	if got := len(m.history["id-web"]); got != 29 {
		t.Errorf("history has %d samples, want 29", got)
	}
}

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		vals  []float64
		width int
		want  string
	}{
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, 8, "▁▂▃▄▅▆▇█"},
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, 3, "▆▇█"},
		{[]float64{0, 0, 0}, 10, "▁▁▁"},
		{[]float64{1, 1000}, 10, "▂█"},
		{nil, 10, ""},
		{[]float64{5}, 0, ""},
	} {
		if got := sparkline(tc.vals, tc.width); got != tc.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", tc.vals, tc.width, got, tc.want)
		}
	}
}

func TestTopQuit(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c", "esc"} {
		m := newTestTop(t, "name", threeContainers(0, 1))
		_, cmd := m.Update(key(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
}

func TestTopMoreLine(t *testing.T) {
	var a, b []fakeEndpoint
	for i := range 40 {
		a = append(a, fakeEndpoint{name: fmt.Sprintf("c%02d", i), rxBytes: uint64(i) * 1000})
		b = append(b, fakeEndpoint{name: fmt.Sprintf("c%02d", i), rxBytes: uint64(i) * 3000})
	}
	m := newTestTop(t, "rx", snapshot(0, a...), snapshot(time.Second, b...))
	view := m.View()
	lines := checkFits(t, view, 80, 24)
	if len(lines) != 24 {
		t.Errorf("view has %d lines, want all 24:\n%s", len(lines), view)
	}
	if !strings.Contains(view, "40 containers") || !strings.Contains(view, "+20 more") {
		t.Errorf("view lacks the count or the +20 more line:\n%s", view)
	}
	// Sorted by rx rate: the 20 busiest are shown.
	if rowOf(lines, "c39") == "" || rowOf(lines, "c20") == "" || rowOf(lines, "c19") != "" {
		t.Errorf("not the 20 busiest rows:\n%s", view)
	}
}

func TestTopEmptyAndLoading(t *testing.T) {
	m := newTestTop(t, "name")
	if v := m.View(); !strings.Contains(v, "reading counters") {
		t.Errorf("before the first read: %q", v)
	}
	m.Update(topStatsMsg{stats: []control.EndpointStats{}})
	v := m.View()
	checkFits(t, v, 80, 24)
	if !strings.Contains(v, "no attached containers — nswire attach NAME") || !strings.Contains(v, "0 containers") {
		t.Errorf("empty state:\n%s", v)
	}
}

func TestTopStatsErrorIsShownNotFatal(t *testing.T) {
	m := newTestTop(t, "name", threeContainers(0, 1))
	_, cmd := m.Update(topStatsMsg{err: errors.New("open state dir: permission denied")})
	if cmd == nil {
		t.Fatal("a read error stopped the refresh")
	}
	v := m.View()
	lines := checkFits(t, v, 80, 24)
	if last := lines[len(lines)-1]; !strings.Contains(last, "permission denied") {
		t.Errorf("status line %q does not show the error", last)
	}
	if rowOf(lines, "web") == "" {
		t.Errorf("the last good snapshot is gone:\n%s", v)
	}
	m.Update(topStatsMsg{stats: threeContainers(time.Second, 2)})
	if strings.Contains(m.View(), "permission denied") {
		t.Errorf("error still shown after a good read")
	}
}

func TestTopRefreshAndPause(t *testing.T) {
	reads := 0
	m := newTopModel(context.Background(), func(context.Context) ([]control.EndpointStats, error) {
		reads++
		return snapshot(time.Duration(reads)*time.Second, fakeEndpoint{name: "web", rxBytes: uint64(reads) * 1000}), nil
	}, &topOptions{interval: time.Millisecond, sort: "name"})
	// Init reads; the read is followed by a tick, the tick by a read.
	msg := m.Init()()
	if _, ok := msg.(topStatsMsg); !ok || reads != 1 {
		t.Fatalf("Init: %T, %d reads", msg, reads)
	}
	_, cmd := m.Update(msg)
	tick := cmd()
	if _, ok := tick.(topTickMsg); !ok {
		t.Fatalf("after a read: %T, want a tick", tick)
	}
	_, cmd = m.Update(tick)
	m.Update(cmd())
	if reads != 2 || !strings.Contains(m.View(), "1000B") {
		t.Fatalf("after a tick: %d reads, view:\n%s", reads, m.View())
	}
	// Paused: ticks go on, reads stop, the view says so.
	m.Update(key("p"))
	_, cmd = m.Update(topTickMsg(time.Now()))
	if _, ok := cmd().(topTickMsg); !ok || reads != 2 {
		t.Errorf("paused: a tick led to a read (%d reads)", reads)
	}
	if v := m.View(); !strings.Contains(v, "PAUSED") || !strings.Contains(v, "p to resume") {
		t.Errorf("paused view:\n%s", v)
	}
	m.Update(key("p"))
	_, cmd = m.Update(topTickMsg(time.Now()))
	if _, ok := cmd().(topStatsMsg); !ok || reads != 3 {
		t.Errorf("resumed: a tick did not read (%d reads)", reads)
	}
}

func TestTopFitsAnySize(t *testing.T) {
	m := newTestTop(t, "name", threeContainers(0, 1), threeContainers(time.Second, 2))
	for _, w := range []int{20, 40, 50, 60, 70, 80, 100, 200} {
		for _, h := range []int{3, 5, 10, 24, 50} {
			m.Update(tea.WindowSizeMsg{Width: w, Height: h})
			lines := checkFits(t, m.View(), w, h)
			if h >= 10 && rowOf(lines, "web") == "" && rowOf(lines, "…") == "" {
				t.Errorf("%dx%d: no web row:\n%s", w, h, m.View())
			}
		}
	}
	m.Update(tea.WindowSizeMsg{Width: 50, Height: 24})
	if v := m.View(); strings.Contains(v, "HIST") || !strings.Contains(v, "RX/s") {
		t.Errorf("at 50 columns the sparkline should go and RX/s stay:\n%s", v)
	}
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 24})
	if v := m.View(); !strings.Contains(v, "cache-with-a…tainer-name ") {
		t.Errorf("at 200 columns the long name should be cut at 24 columns:\n%s", v)
	}
}

func TestCutMiddle(t *testing.T) {
	for _, tc := range []struct {
		s    string
		w    int
		want string
	}{
		{"web", 10, "web"},
		{"nswb-47d10d-observe-c", 11, "nswb-…rve-c"},
		{"nswb-47d10d-fastpath-c", 11, "nswb-…ath-c"},
		{"abcdefghij", 10, "abcdefghij"},
		{"abcdefghijk", 10, "abcde…hijk"},
		{"数据库容器名字", 8, "数据…字"},
		{"abcdefgh", 4, "abcdefgh"}, // too narrow to cut well: pad cuts the end
	} {
		got := cutMiddle(tc.s, tc.w)
		if got != tc.want {
			t.Errorf("cutMiddle(%q, %d) = %q, want %q", tc.s, tc.w, got, tc.want)
		}
		if tc.w >= 5 && lipgloss.Width(got) > tc.w {
			t.Errorf("cutMiddle(%q, %d) is %d wide", tc.s, tc.w, lipgloss.Width(got))
		}
	}
}

func TestCompactNumbers(t *testing.T) {
	for _, tc := range []struct {
		b    float64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {1536, "1.5K"}, {10 * 1024, "10K"},
		{1023 * 1024, "1023K"}, {1024 * 1024, "1.0M"}, {5 << 30, "5.0G"},
	} {
		if got := compactBytes(tc.b); got != tc.want || len(got) > 5 {
			t.Errorf("compactBytes(%v) = %q, want %q", tc.b, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0"}, {9999, "9999"}, {10000, "10.0k"}, {123456, "123k"}, {999999, "1000k"}, {7_800_000, "7.8M"},
	} {
		if got := compactCount(tc.n); got != tc.want || len(got) > 5 {
			t.Errorf("compactCount(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := compactRate(nil); got != "-" {
		t.Errorf("compactRate(nil) = %q", got)
	}
}

func TestTopCmdFlagsAndTTY(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"top", "--interval", "50ms"}, "--interval 50ms is too short"},
		{[]string{"top", "--sort", "bogus"}, `--sort "bogus" is not a sort key: use name|rx|tx|total|drops`},
		{[]string{"top"}, "nswire stats -w"},
		{[]string{"top", "--sort", "drops", "--interval", "100ms"}, "stdout is not a terminal"},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

// TestTopFlowView: ↓ selects the next container, f shows its flows (read at
// once, through the flow fetcher, for that container only), busiest first
// with rates from the second read on; f hides them again; the view still
// fits 80×24.
func TestTopFlowView(t *testing.T) {
	snap := snapshot(0, fakeEndpoint{name: "alpha", rxBytes: 100}, fakeEndpoint{name: "beta", rxBytes: 200})
	m := newTestTop(t, "name", snap)
	var asked []string
	peer := netip.MustParseAddr("172.17.0.99")
	reads := 0
	m.fetch = func(context.Context) ([]control.EndpointStats, error) { return snap, nil }
	m.flowFetch = func(_ context.Context, id string) (*control.FlowReport, error) {
		asked = append(asked, id)
		reads++
		return &control.FlowReport{Time: topT0.Add(time.Duration(reads) * time.Second), Flows: []control.FlowRow{
			{Name: "beta", Direction: "tx", Proto: "udp", Peer: peer, PeerPort: 53, PeerName: "dns", Packets: 10, Bytes: uint64(1000 * reads)},
			{Name: "beta", Direction: "rx", Proto: "tcp", Peer: peer, PeerPort: 80, PeerName: "web", Packets: 99, Bytes: 50000},
		}}, nil
	}
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'f'}})
	if cmd == nil {
		t.Fatal("f did not read at once")
	}
	m.Update(cmd())
	if len(asked) != 1 || asked[0] != "id-beta" {
		t.Fatalf("flows read for %v, want the selected id-beta", asked)
	}
	view := m.View()
	checkFits(t, view, 80, 24)
	for _, want := range []string{"flows of beta", "172.17.0.99:80", "web", "172.17.0.99:53", "dns"} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}
	if strings.Index(view, "172.17.0.99:80") > strings.Index(view, "172.17.0.99:53") {
		t.Errorf("flows not busiest first:\n%s", view)
	}
	m.Update(m.read()) // a second read: rates
	if view := m.View(); !strings.Contains(view, "/s") {
		t.Errorf("no rate after the second read:\n%s", view)
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{'f'}})
	if view := m.View(); strings.Contains(view, "flows of") {
		t.Errorf("f did not hide the flows:\n%s", view)
	}
}

// TestTopDualStack: an ADDRESS6 column appears when a container is dual
// stack, showing its IPv6 address without the prefix on a wide terminal;
// it is the first column to go on a narrow one, and the view still fits.
func TestTopDualStack(t *testing.T) {
	dual := func(at time.Duration) []control.EndpointStats {
		s := threeContainers(at, 1)
		s[0].Address6 = "fd00:20::ffff:ffff:ffff:fffe/64"
		return s
	}
	m := newTestTop(t, "name", dual(0), dual(time.Second))
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 24})
	lines := checkFits(t, m.View(), 160, 24)
	if !strings.Contains(m.View(), "ADDRESS6") || !strings.Contains(rowOf(lines, "web"), " fd00:20::ffff:ffff:ffff:fffe ") {
		t.Fatalf("no IPv6 address for web on a wide terminal:\n%s", m.View())
	}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	lines = checkFits(t, m.View(), 80, 24)
	if strings.Contains(m.View(), "ADDRESS6") || !strings.Contains(rowOf(lines, "web"), "172.17.0.10") {
		t.Fatalf("on 80 columns ADDRESS6 should go first, before ADDRESS:\n%s", m.View())
	}
	// IPv4 only: no ADDRESS6 column at all.
	m = newTestTop(t, "name", threeContainers(0, 1))
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 24})
	if strings.Contains(m.View(), "ADDRESS6") {
		t.Fatalf("ADDRESS6 without a dual-stack container:\n%s", m.View())
	}
}
