//go:build linux

package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// DefaultImage is the tiny test image built by test/mkimage.sh; override it
// with the environment variable NSWIRE_IMAGE.
const DefaultImage = "nswire-busybox:latest"

// IndexHTML is the exact content of /www/index.html in the test image, which
// the image's default command (busybox httpd -f -p 80 -h /www) serves.
const IndexHTML = "hello from nswire\n"

// ContainerLabel is set on every container started by RunNone and RunBridge,
// so leftovers can be found: docker ps -a --filter label=org.nswire.test
const ContainerLabel = "org.nswire.test"

// imageLabel and imageVersion must match LABEL and LAYOUT_VERSION in
// test/mkimage.sh.
const (
	imageLabel   = "org.nswire.testimage.version"
	imageVersion = "1"
)

// ImageName returns the test image name: $NSWIRE_IMAGE or DefaultImage.
func ImageName() string {
	if s := os.Getenv("NSWIRE_IMAGE"); s != "" {
		return s
	}
	return DefaultImage
}

// Docker returns a client for the local engine (DOCKER_HOST etc. honoured,
// API version negotiated, so an older engine works), closed in t.Cleanup.
// An unreachable engine skips t, or fails it in CI.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Unavailable(t, "docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		Unavailable(t, "docker engine unreachable (run test/setup.sh): %v", err)
	}
	return cli
}

var imageMu sync.Mutex

// Image makes sure the tiny test image exists, building it with
// test/mkimage.sh if needed, and returns its name.
func Image(t testing.TB) string {
	t.Helper()
	cli := Docker(t)
	name := ImageName()
	imageMu.Lock()
	defer imageMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if img, err := cli.ImageInspect(ctx, name); err == nil && img.Config != nil && img.Config.Labels[imageLabel] == imageVersion {
		return name
	}
	script := filepath.Join(ModuleRoot(t), "test", "mkimage.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "NSWIRE_IMAGE="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: %s: %v\n%s", script, err, out)
	}
	t.Logf("testenv: %s", strings.TrimSpace(string(out)))
	return name
}

// RunNone starts a container like `docker run -d --network=none IMAGE cmd…`
// from the test image (default command: httpd on port 80 if cmd is empty),
// named namePrefix plus a random suffix. It waits until the container runs
// and returns its ID and init PID. t.Cleanup force-removes it.
func RunNone(t testing.TB, cli *client.Client, namePrefix string, cmd ...string) (id string, pid int) {
	t.Helper()
	return run(t, cli, "none", namePrefix, cmd)
}

// RunBridge is RunNone on Docker's default bridge network (docker0), for
// tests that observe a container Docker wired itself.
func RunBridge(t testing.TB, cli *client.Client, namePrefix string, cmd ...string) (id string, pid int) {
	t.Helper()
	return run(t, cli, "bridge", namePrefix, cmd)
}

// RunOn is RunNone on the Docker network called network.
func RunOn(t testing.TB, cli *client.Client, network, namePrefix string, cmd ...string) (id string, pid int) {
	t.Helper()
	return run(t, cli, network, namePrefix, cmd)
}

var badNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// ContainerName returns prefix (made valid for Docker) plus a random suffix.
func ContainerName(prefix string) string {
	prefix = strings.Trim(badNameChars.ReplaceAllString(prefix, "-"), "-_.")
	if prefix == "" {
		prefix = "nswire-test"
	}
	if len(prefix) > 48 {
		prefix = prefix[:48]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func run(t testing.TB, cli *client.Client, netMode, namePrefix string, cmd []string) (string, int) {
	t.Helper()
	image := Image(t)
	name := ContainerName(namePrefix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := &container.Config{
		Image:  image,
		Labels: map[string]string{ContainerLabel: t.Name()},
	}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(netMode)}
	created, err := cli.ContainerCreate(ctx, cfg, hc, &network.NetworkingConfig{}, nil, name)
	if err != nil {
		t.Fatalf("testenv: create container %s (--network=%s): %v", name, netMode, err)
	}
	id := created.ID
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("testenv: remove container %s: %v", name, err)
		}
	})
	if err := cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		t.Fatalf("testenv: start container %s: %v", name, err)
	}
	for {
		info, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			t.Fatalf("testenv: inspect container %s: %v", name, err)
		}
		if st := info.State; st != nil {
			if st.Running && st.Pid > 0 {
				return id, st.Pid
			}
			if st.Status == "exited" || st.Status == "dead" {
				t.Fatalf("testenv: container %s %s (exit code %d) before it was seen running: %s\n%s",
					name, st.Status, st.ExitCode, st.Error, logs(cli, id))
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: container %s not running after 1m", name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func logs(cli *client.Client, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "50"})
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}

// Exec runs cmd in container id like `docker exec`, and returns its standard
// output and exit code; standard error, if any, goes to t.Log. An API error
// fails t; a non-zero exit code does not. The exec is cancelled when the test
// ends.
func Exec(t testing.TB, cli *client.Client, id string, cmd ...string) (stdout string, exit int) {
	t.Helper()
	ctx := context.Background()
	if c, ok := t.(interface{ Context() context.Context }); ok {
		ctx = c.Context()
	}
	stdout, stderr, exit, err := ExecContext(ctx, cli, id, cmd...)
	if err != nil {
		t.Fatalf("testenv: exec %q in %.12s: %v", cmd, id, err)
	}
	if stderr != "" {
		t.Logf("exec %q in %.12s: stderr: %s", cmd, id, strings.TrimRight(stderr, "\n"))
	}
	return stdout, exit
}

// ExecContext is Exec without a testing.TB, safe to call from any goroutine
// (for example a traffic generator running next to the test).
func ExecContext(ctx context.Context, cli *client.Client, id string, cmd ...string) (stdout, stderr string, exit int, err error) {
	if len(cmd) == 0 {
		return "", "", -1, fmt.Errorf("empty command")
	}
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd:          cmd,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec create: %w", err)
	}
	resp, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec attach: %w", err)
	}
	defer resp.Close()
	var outBuf, errBuf bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&outBuf, &errBuf, resp.Reader)
		copied <- err
	}()
	select {
	case err := <-copied:
		if err != nil && err != io.EOF {
			return outBuf.String(), errBuf.String(), -1, fmt.Errorf("exec output: %w", err)
		}
	case <-ctx.Done():
		resp.Close()
		<-copied
		return outBuf.String(), errBuf.String(), -1, ctx.Err()
	}
	// The stream ends when the process does; the engine may take a moment
	// more to record the exit code.
	for {
		ins, err := cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return outBuf.String(), errBuf.String(), -1, fmt.Errorf("exec inspect: %w", err)
		}
		if !ins.Running {
			return outBuf.String(), errBuf.String(), ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return outBuf.String(), errBuf.String(), -1, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
