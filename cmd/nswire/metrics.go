package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control"
	"github.com/nswire/nswire/control/metrics"
)

// writePrometheus prints one scrape of the collector in the Prometheus text
// exposition format.
func writePrometheus(w io.Writer, m *control.Manager) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(m))
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

func newMetricsCmd(g *globalFlags) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Serve the counters of all attached containers to Prometheus (/metrics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withManager(cmd, func(m *control.Manager) error {
				reg := prometheus.NewRegistry()
				reg.MustRegister(metrics.NewCollector(m))
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go func() {
					<-cmd.Context().Done()
					srv.Close()
				}()
				fmt.Fprintf(cmd.ErrOrStderr(), "serving metrics on http://%s/metrics (Ctrl-C to stop)\n", listen)
				if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
					return fmt.Errorf("serve metrics on %s: %w", listen, err)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9464", "address to serve /metrics on")
	return cmd
}
