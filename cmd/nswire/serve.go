package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/nswire/nswire/control/serve"
)

func newServeCmd(g *globalFlags) *cobra.Command {
	var (
		listen    string
		resync    time.Duration
		logFormat string
		only      map[string]string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Keep containers wired across restarts, from their nswire.* labels and from attach (a daemon)",
		Long: `Run the nswire daemon in the foreground. It wires every --network=none
container started with the label nswire.enable=true (and the optional
nswire.ip, nswire.gateway, nswire.mac, nswire.mode, nswire.bridge,
nswire.ifname, nswire.mtu, which mean what the attach flags mean), and every
container attached with ` + "`nswire attach`" + `; whenever one starts again with a new
network namespace it is wired again with the same address, MAC and mode,
and its counters continue. A removed container is detached and its address
freed. Only one serve runs at a time.

It serves /metrics (the counters, as ` + "`nswire metrics`" + `) and /healthz on --listen,
logs to standard error, and keeps a log of its actions for ` + "`nswire events`" + `.
Under systemd (Type=notify) it reports ready after its first full reconcile.`,
		Example: `  nswire serve
  docker run -d --network=none -l nswire.enable=true -l nswire.ip=172.17.0.10/16 --name web IMAGE
  systemctl enable --now nswire`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if logFormat != "text" && logFormat != "json" {
				return fmt.Errorf("--log-format %q is not text or json", logFormat)
			}
			if resync < time.Second {
				return fmt.Errorf("--resync %s is too short: give 1s or more", resync)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var h slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
			if logFormat == "json" {
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
			}
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			defer m.Close()
			cfg := serve.Config{
				Listen: listen,
				Resync: resync,
				Logger: slog.New(h),
				Labels: only,
				Ready:  func() { daemon.SdNotify(false, daemon.SdNotifyReady) },
			}
			defer daemon.SdNotify(false, daemon.SdNotifyStopping)
			return serve.Run(cmd.Context(), m, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:9464", `address of /metrics and /healthz ("" for none)`)
	f.DurationVar(&resync, "resync", 30*time.Second, "period of the full reconcile of every container")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringToStringVar(&only, "only-label", nil, "manage only containers with these labels KEY=VALUE (tests)")
	f.MarkHidden("only-label")
	cmd.RegisterFlagCompletionFunc("log-format", oneOf("text", "json"))
	return cmd
}
