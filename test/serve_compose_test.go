//go:build linux

package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/nswire/nswire/control/serve"
	"github.com/nswire/nswire/control/state"
	"github.com/nswire/nswire/test/testenv"
)

// TestServeCompose: a Compose file with network_mode none and the nswire
// labels (Debian's docker-compose 1.29, a real client): up wires both
// services, restart wires them again with the same addresses and MACs, and
// down leaves nothing.
func TestServeCompose(t *testing.T) {
	e := newEnv(t)
	cli := testenv.Docker(t)
	compose := testenv.RequireTool(t, "docker-compose")
	image := testenv.Image(t)
	token := newToken()
	startServe(t, e, token, 30*time.Second)
	dir := t.TempDir()
	file := filepath.Join(dir, "docker-compose.yml")
	yml := fmt.Sprintf(`version: "2.4"
services:
  web:
    image: %[1]s
    network_mode: none
    labels:
      nswire.enable: "true"
      nswire.mode: observe
      %[2]s: %[3]s
      %[4]s: %[5]s
  db:
    image: %[1]s
    command: ["sleep", "300"]
    network_mode: none
    labels:
      nswire.enable: "true"
      nswire.mode: "off"
      %[2]s: %[3]s
      %[4]s: %[5]s
`, image, serveLabel, token, testenv.ContainerLabel, t.Name())
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	project := strings.ReplaceAll(token, "-", "")
	run := func(args ...string) {
		t.Helper()
		c := exec.Command(compose, append([]string{"-p", project, "-f", file}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command(compose, "-p", project, "-f", file, "down", "-t", "0").Run() })
	run("up", "-d")
	ids := map[string]string{}
	cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil || len(cs) != 2 {
		t.Fatalf("compose containers: %d, %v", len(cs), err)
	}
	for _, c := range cs {
		ids[c.Labels["com.docker.compose.service"]] = c.ID
	}
	first := map[string]*state.Record{}
	for svc, id := range ids {
		first[svc], _ = waitWired(t, e, cli, id)
	}
	if first["web"].Mode != "observe" || first["db"].Mode != "off" {
		t.Fatalf("modes: web %s, db %s", first["web"].Mode, first["db"].Mode)
	}
	if body := httpGet(t, "http://"+first["web"].IP().String()+"/"); body != testenv.IndexHTML {
		t.Fatalf("page = %q", body)
	}
	run("restart", "-t", "0")
	for svc, id := range ids {
		r, _ := waitWired(t, e, cli, id)
		if r.Address.String() != first[svc].Address.String() || r.MAC.String() != first[svc].MAC.String() || r.Slot != first[svc].Slot || r.PID == first[svc].PID {
			t.Fatalf("%s after compose restart: %+v, was %+v", svc, r, first[svc])
		}
	}
	if body := httpGet(t, "http://"+first["web"].IP().String()+"/"); body != testenv.IndexHTML {
		t.Fatalf("page after restart = %q", body)
	}
	run("down", "-t", "0")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		recs, _, _ := state.Store{Dir: e.stateDir}.List()
		if len(recs) == 0 && len(ourVeths(e)) == 0 && len(endpointsIn(t, e.pinDir)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after compose down: %d records, veths %v, endpoints %v", len(recs), ourVeths(e), endpointsIn(t, e.pinDir))
		}
	}
	if n := len(eventsOfAction(eventsOf(t, e), cs[0].Names[0][1:], serve.ActDetached)); n != 1 {
		t.Fatalf("%d detached events for %s", n, cs[0].Names[0])
	}
}
