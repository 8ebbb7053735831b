// Package metrics exports nswire's counters to Prometheus: a collector that
// reads every endpoint's counters at each scrape. Only the commands that serve
// or print metrics import it, so the attach path never initialises the
// Prometheus client.
package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nswire/nswire/control"
)

// Collector exposes the counters of every attached target to Prometheus.
// Each scrape reads the pinned maps once (one batch).
type Collector struct {
	m *control.Manager
}

// NewCollector returns a Prometheus collector reading through m.
func NewCollector(m *control.Manager) *Collector { return &Collector{m: m} }

var (
	labels        = []string{"container", "id", "host_if"}
	descInfo      = prometheus.NewDesc("nswire_endpoint_info", "A record of nswire: its address, datapath mode, state (live, restarted, stopped, gone, broken, damaged) and, for a CNI attachment, the runtime's container and pod. Only a live record has counter series.", append(labels, "address", "mode", "bridge", "state", "cni_container_id", "pod_namespace", "pod_name"), nil)
	descPackets   = prometheus.NewDesc("nswire_packets_total", "Packets counted by the eBPF datapath, by direction (rx: to the container, tx: from it) and protocol.", append(labels, "direction", "proto"), nil)
	descBytes     = prometheus.NewDesc("nswire_bytes_total", "Bytes counted by the eBPF datapath (Ethernet header included, as interface counters count), by direction and protocol.", append(labels, "direction", "proto"), nil)
	descDrops     = prometheus.NewDesc("nswire_drops_total", "Packets from the container dropped by the spoof guard, by reason.", append(labels, "reason"), nil)
	descFastpath  = prometheus.NewDesc("nswire_fastpath_packets_total", "Packets the container sent that took the fast path past the bridge.", labels, nil)
	descFastBytes = prometheus.NewDesc("nswire_fastpath_bytes_total", "Bytes the container sent that took the fast path past the bridge.", labels, nil)
	descUp        = prometheus.NewDesc("nswire_scrape_ok", "1 if nswire could read its counters at this scrape.", nil, nil)
	descEvicted   = prometheus.NewDesc("nswire_flows_evicted_total", "Flows the datapath's LRU flow maps dropped to make room (their packets stay in the counters).", nil, nil)
	descFlowErr   = prometheus.NewDesc("nswire_flow_errors_total", "Packets whose flow entry the kernel could not create (they are in the counters, in no flow).", nil, nil)
	descEvents    = prometheus.NewDesc("nswire_drop_events_total", "Drop events of the spoof guard, by what became of them: sent to the ring buffer, or not sent because over the rate limit or with the ring full.", []string{"result"}, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descPackets, descBytes, descDrops, descFastpath, descFastBytes, descUp, descEvicted, descFlowErr, descEvents} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	stats, err := c.m.AllStats(context.Background())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	// A datapath without flow maps (pinned by an older nswire) or none at
	// all has no such figures: the series are left out, not zero.
	if t, err := c.m.FlowTotals(); err == nil {
		ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(t.Evicted))
		ch <- prometheus.MustNewConstMetric(descFlowErr, prometheus.CounterValue, float64(t.Errors))
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(t.Drops.Sent), "sent")
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(t.Drops.RateLimited), "rate_limited")
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(t.Drops.RingFull), "ring_full")
	}
	for _, s := range stats {
		l := []string{s.Name, s.ID, s.HostIf}
		var cid, podNS, pod string
		if c := s.CNI; c != nil {
			cid, podNS, pod = c.ContainerID, c.PodNamespace, c.PodName
		}
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, append(l, s.Address, s.Mode, s.Bridge, string(s.State), cid, podNS, pod)...)
		if !s.Counted { // not live, or mode off: no current counters
			continue
		}
		for dir, by := range map[string]map[string]control.Flow{"rx": s.RXByProto, "tx": s.TXByProto} {
			for proto, f := range by {
				ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(f.Packets), append(l, dir, proto)...)
				ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(f.Bytes), append(l, dir, proto)...)
			}
		}
		for _, reason := range control.DropReasons {
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(s.Drops[reason]), append(l, reason)...)
		}
		ch <- prometheus.MustNewConstMetric(descFastpath, prometheus.CounterValue, float64(s.Fastpathed.Packets), l...)
		ch <- prometheus.MustNewConstMetric(descFastBytes, prometheus.CounterValue, float64(s.Fastpathed.Bytes), l...)
	}
}
