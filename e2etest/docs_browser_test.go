package e2etest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/proxy"
)

// browserEnv returns Chromium and the viewer's directory (RAGPLANE_WEB_DIR, which `make up` writes
// to .ragplane/stack.env with CHROMIUM_BIN). Without them the test skips, or fails under
// RAGPLANE_REQUIRE_STACK=1 (make test installs both).
func browserEnv(tb testing.TB) (chromium, webDir string) {
	tb.Helper()
	chromium = os.Getenv("CHROMIUM_BIN")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	webDir = os.Getenv("RAGPLANE_WEB_DIR")
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, "Chromium at "+chromium+" (CHROMIUM_BIN)")
	}
	if webDir == "" {
		missing = append(missing, "RAGPLANE_WEB_DIR (ops/web.sh)")
	}
	if len(missing) > 0 {
		msg := "missing " + strings.Join(missing, " and ") + "; `make up` installs both and writes .ragplane/stack.env"
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return chromium, webDir
}

// runChromium runs headless Chromium on url with extra flags and returns its standard output. The
// flags are those that work on a machine with no internet: no background networking, no
// component updates; every host name but the loopback address fails to resolve, so a page that
// needs anything from the internet cannot render.
func runChromium(tb testing.TB, chromium, url string, extra ...string) []byte {
	tb.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--user-data-dir=" + tb.TempDir(),
		// Virtual time runs until the page is idle (the document fetched and rendered), bounded.
		"--virtual-time-budget=30000", "--window-size=1280,1600"}, extra...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, chromium, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("chromium %s: %v\n%s", url, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

var dataPath = regexp.MustCompile(`class="opblock-summary-path" data-path="([^"]+)"`)

// TestDocsPagesInBrowser opens /docs of the control plane and of the proxy in headless Chromium,
// offline, and checks that the rendered page shows every operation of the service's document; it
// saves a screenshot of each in RAGPLANE_SCREENSHOT_DIR (default: the test's temporary directory).
func TestDocsPagesInBrowser(t *testing.T) {
	chromium, webDir := browserEnv(t)
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) { c.WebDir = webDir }})
	px := st.StartProxy(t, func(c *proxy.Config) { c.WebDir = webDir })
	shots := os.Getenv("RAGPLANE_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []struct{ name, base string }{{"controlplane", st.AdminURL}, {"proxy", px}} {
		t.Run(svc.name, func(t *testing.T) {
			var doc struct {
				Info  struct{ Title string } `json:"info"`
				Paths map[string]json.RawMessage
			}
			e2etest.Send(t, "GET", svc.base+"/openapi.json", nil).Decode(t, &doc)
			dom := runChromium(t, chromium, svc.base+"/docs", "--dump-dom")
			if !bytes.Contains(dom, []byte(doc.Info.Title)) {
				t.Errorf("the rendered page does not show the title %q:\n%.2000s", doc.Info.Title, dom)
			}
			shown := map[string]bool{}
			for _, m := range dataPath.FindAllSubmatch(dom, -1) {
				shown[string(m[1])] = true
			}
			var missing []string
			for p := range doc.Paths {
				if !shown[p] {
					missing = append(missing, p)
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("the rendered page shows %d paths; missing:\n  %s", len(shown), strings.Join(missing, "\n  "))
			}
			shot := filepath.Join(shots, "docs-"+svc.name+".png")
			runChromium(t, chromium, svc.base+"/docs", "--screenshot="+shot)
			if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
				t.Errorf("screenshot %s: %v (size %d)", shot, err, sizeOf(st))
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}
