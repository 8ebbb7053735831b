package control

import (
	"fmt"
	"net"
)

// datapathOps is what the attach plan needs of the eBPF datapath. The
// datapath is opened (loaded or adopted from its pins) on first use, so that
// `--mode off` and dry runs never touch bpffs.
type datapathOps interface {
	attach(rec *Record, attachMode string) (used string, err error)
	setMode(rec *Record, mode, attachMode string) (used string, err error)
	detach(rec *Record) error
	readCounters() (map[uint32]Counters, error)
	close()
}

type lazyDatapath struct {
	pinDir string
	dp     *Datapath // programs and maps, for attaching
	ro     *Datapath // maps only, for reading counters
}

func newDatapathOps(pinDir string) datapathOps { return &lazyDatapath{pinDir: pinDir} }

func (l *lazyDatapath) open() (*Datapath, error) {
	if l.dp != nil {
		return l.dp, nil
	}
	dp, err := OpenDatapath(l.pinDir)
	if err != nil {
		return nil, err
	}
	l.dp = dp
	return dp, nil
}

func endpointOf(rec *Record) (EndpointSpec, error) {
	mac, err := net.ParseMAC(rec.MAC)
	if err != nil && !rec.Observed {
		return EndpointSpec{}, fmt.Errorf("record mac: %w", err)
	}
	return EndpointSpec{
		HostIfName:  rec.HostIf,
		HostIfindex: rec.HostIfindex,
		MAC:         mac,
		IP4:         rec.IP().To4(),
		Guard:       !rec.Observed,
		Slot:        rec.Slot,
	}, nil
}

func (l *lazyDatapath) attach(rec *Record, attachMode string) (string, error) {
	return l.setMode(rec, rec.Mode, attachMode)
}

func (l *lazyDatapath) setMode(rec *Record, mode string, attachMode string) (string, error) {
	if attachMode == "" {
		attachMode = "auto"
	}
	ep, err := endpointOf(rec)
	if err != nil {
		return "", err
	}
	dp, err := l.open()
	if err != nil {
		return "", err
	}
	used, err := dp.Attach(ep, DatapathMode(mode), AttachMode(attachMode))
	return string(used), err
}

func (l *lazyDatapath) detach(rec *Record) error {
	dp, err := l.open()
	if err != nil {
		return err
	}
	return dp.Detach(rec.HostIf, rec.HostIfindex, rec.IP().To4(), nil)
}

func (l *lazyDatapath) close() {
	for _, dp := range []**Datapath{&l.dp, &l.ro} {
		if *dp != nil {
			(*dp).Close()
			*dp = nil
		}
	}
}

// readCounters reads through the full datapath when this process has it open,
// else through the pinned maps alone (no programs are loaded to read).
func (l *lazyDatapath) readCounters() (map[uint32]Counters, error) {
	if l.dp != nil {
		return l.dp.ReadCounters()
	}
	if l.ro == nil {
		ro, err := OpenDatapathMaps(l.pinDir)
		if err != nil {
			return nil, err
		}
		l.ro = ro
	}
	return l.ro.ReadCounters()
}
