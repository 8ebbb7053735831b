//go:build linux

package testenv

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// fakeTB records Skip/Fatal calls; both end the calling goroutine like the
// real ones do.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, format
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, format
	runtime.Goexit()
}

func runFake(fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn(f)
	}()
	wg.Wait()
	return f
}

func TestPolicy(t *testing.T) {
	missing := func(tb testing.TB) { RequireTool(tb, "nswire-no-such-tool-x") }
	for _, tc := range []struct {
		ci         string
		skip, fail bool
	}{
		{"", true, false},
		{"false", true, false},
		{"true", false, true},
		{"1", false, true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			f := runFake(missing)
			if f.skipped != tc.skip || f.failed != tc.fail {
				t.Errorf("CI=%q: skipped=%v failed=%v, want skipped=%v failed=%v", tc.ci, f.skipped, f.failed, tc.skip, tc.fail)
			}
		})
	}
	t.Run("present tool", func(t *testing.T) {
		if p := RequireTool(t, "sh"); !filepath.IsAbs(p) {
			t.Errorf("RequireTool(sh) = %q, want an absolute path", p)
		}
	})
}

func TestContainerName(t *testing.T) {
	a, b := ContainerName("TestX/sub case"), ContainerName("TestX/sub case")
	if a == b {
		t.Errorf("names not unique: %s", a)
	}
	if !strings.HasPrefix(a, "TestX-sub-case-") || badNameChars.MatchString(a) {
		t.Errorf("bad name %q", a)
	}
	if n := ContainerName("///"); !strings.HasPrefix(n, "nswire-test-") {
		t.Errorf("empty prefix gave %q", n)
	}
}

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "test", "setup.sh")); err != nil {
		t.Errorf("module root %s: %v", root, err)
	}
}

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestNewNetNS(t *testing.T) {
	RequireRoot(t)
	hostIno := nsIno(t, "/proc/self/ns/net")
	ns := NewNetNS(t)
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino == hostIno {
		t.Fatalf("new netns has the host's inode %d", hostIno)
	}
	// The creating thread went back: any thread is in the host namespace.
	if got := nsIno(t, "/proc/thread-self/ns/net"); got != hostIno {
		t.Fatalf("thread left in netns %d, host is %d", got, hostIno)
	}

	var inside uint64
	var links []string
	err := InNetNS(ns, func() error {
		inside = nsIno(t, "/proc/thread-self/ns/net")
		ll, err := netlink.LinkList()
		for _, l := range ll {
			a := l.Attrs()
			links = append(links, a.Name)
			if a.Name == "lo" && a.Flags&unix.IFF_UP == 0 {
				t.Errorf("lo is down in the new netns")
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != st.Ino {
		t.Errorf("InNetNS ran in netns %d, want %d", inside, st.Ino)
	}
	if strings.Join(links, ",") != "lo" {
		t.Errorf("links in new netns = %v, want [lo]", links)
	}
	if got := nsIno(t, "/proc/thread-self/ns/net"); got != hostIno {
		t.Errorf("after InNetNS, thread in netns %d, host is %d", got, hostIno)
	}
}

func TestNewNamedNetNS(t *testing.T) {
	RequireRoot(t)
	name := ContainerName("nswire-testenv")
	path := filepath.Join("/run/netns", name)
	t.Run("create", func(t *testing.T) {
		ns := NewNamedNetNS(t, name)
		h, err := netns.GetFromName(name)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if !h.Equal(ns) {
			t.Errorf("%s is not the returned namespace", path)
		}
		if nsIno(t, path) == nsIno(t, "/proc/self/ns/net") {
			t.Errorf("%s is the host namespace", path)
		}
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after cleanup (err=%v)", path, err)
	}
}

func TestDockerNone(t *testing.T) {
	RequireRoot(t)
	cli := Docker(t)
	id, pid := RunNone(t, cli, t.Name())
	if pid <= 0 {
		t.Fatalf("pid %d", pid)
	}
	out, code := Exec(t, cli, id, "cat", "/www/index.html")
	if code != 0 || out != IndexHTML {
		t.Errorf("cat /www/index.html: exit %d, %q; want 0, %q", code, out, IndexHTML)
	}
	out, code = Exec(t, cli, id, "sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 || out != "out\n" {
		t.Errorf("exec: exit %d, %q; want 3, %q", code, out, "out\n")
	}
	// --network=none: only lo, and not the host's namespace.
	out, _ = Exec(t, cli, id, "ls", "/sys/class/net")
	if f := strings.Fields(out); len(f) != 1 || f[0] != "lo" {
		t.Errorf("links in none container: %q, want lo only", out)
	}
	if a, b := nsIno(t, "/proc/self/ns/net"), nsIno(t, filepath.Join("/proc", strconv.Itoa(pid), "ns/net")); a == b {
		t.Errorf("container pid %d shares the host netns", pid)
	}
}

func TestDockerBridge(t *testing.T) {
	RequireRoot(t)
	cli := Docker(t)
	id, _ := RunBridge(t, cli, t.Name())
	info, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	ip := info.NetworkSettings.Networks["bridge"].IPAddress
	if ip == "" {
		t.Fatalf("no bridge IP for %s", id)
	}
	// The image's default command serves /www on port 80.
	c := &http.Client{Timeout: 2 * time.Second}
	var body []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://" + ip + "/index.html")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET http://%s/: %v", ip, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if string(body) != IndexHTML {
		t.Errorf("GET http://%s/index.html = %q, want %q", ip, body, IndexHTML)
	}
}
