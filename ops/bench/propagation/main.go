// Command propagation is the propagation benchmark of the control plane -> xDS -> proxy path, at
// several catalog sizes and for one or more builds of ragplane in one run:
//
//   - PATCH -> enforced: one tenant's max_request_bytes is flipped through the admin API, and the
//     time until a running proxy enforces it (413 / 200 for a 4 KiB body) is measured by polling;
//   - a cold proxy's time to /readyz, and to enforcing the policy of the last tenant created;
//   - the RSS of the proxy and the control plane, and the control plane's CPU while idle.
//
// ops/bench/propagation.sh builds the binaries (this tree's and a baseline revision's) and runs
// it; BENCHMARKS.md ("Propagation") describes the method. Everything it starts (a catalog
// database per build and size, a control plane, proxies, tenant databases) it removes again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binary is one build of ragplane to measure.
type binary struct {
	label string // as shown in the table
	short string // for file names
	path  string
}

type binaries []binary

func (b *binaries) String() string { return fmt.Sprint(*b) }

func (b *binaries) Set(v string) error {
	label, path, ok := strings.Cut(v, "=")
	if !ok || label == "" || path == "" {
		return errors.New("want LABEL=PATH")
	}
	short, _, _ := strings.Cut(label, " ")
	*b = append(*b, binary{label: label, short: fmt.Sprintf("%d-%s", len(*b)+1, short), path: path})
	return nil
}

type config struct {
	bins          binaries
	sizes         []int
	samples       int
	poll          time.Duration
	gap           time.Duration
	sampleTimeout time.Duration
	readyTimeout  time.Duration
	idle          time.Duration
	chunk         int
	out           string
	logDir        string
	command       string
	server        server
	redisURL      string
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("propagation: ")
	var cfg config
	var sizes string
	flag.Var(&cfg.bins, "bin", "LABEL=PATH of a ragplane binary to measure (repeatable, measured in this order)")
	flag.StringVar(&sizes, "sizes", "100,10000,100000", "catalog sizes (tenants), comma separated")
	flag.IntVar(&cfg.samples, "samples", 30, "PATCH -> enforced samples per size")
	flag.DurationVar(&cfg.poll, "poll", time.Millisecond, "pause between probe requests while waiting for enforcement")
	flag.DurationVar(&cfg.gap, "gap", 200*time.Millisecond, "pause between PATCH samples")
	flag.DurationVar(&cfg.sampleTimeout, "sample-timeout", 60*time.Second, "give up on one change after this long")
	flag.DurationVar(&cfg.readyTimeout, "ready-timeout", 60*time.Second, "give up on a proxy (or control plane) getting ready after this long")
	flag.DurationVar(&cfg.idle, "idle", 10*time.Second, "how long the control plane's idle CPU is measured")
	flag.IntVar(&cfg.chunk, "chunk", 4000, "bulk tenants inserted per statement; the warm proxy must catch up after each")
	flag.StringVar(&cfg.out, "out", ".ragplane/bench/propagation.md", "where the Markdown report goes")
	flag.StringVar(&cfg.logDir, "logs", ".ragplane/bench/propagation-logs", "where the services' logs go")
	flag.StringVar(&cfg.command, "command", "ops/bench/propagation.sh", "the command that reproduces the run, for the report")
	flag.Parse()
	cfg.server = server{url: os.Getenv("DATABASE_URL")}
	cfg.redisURL = os.Getenv("REDIS_URL")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(s, "_", "")))
		if err != nil || n < 2 {
			log.Fatalf("-sizes: %q is not a catalog size (a whole number, at least 2)", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	switch {
	case len(cfg.bins) == 0:
		log.Fatal("give at least one -bin LABEL=PATH")
	case cfg.server.url == "" || cfg.redisURL == "":
		log.Fatal("DATABASE_URL and REDIS_URL must be set (source .ragplane/stack.env)")
	case cfg.samples < 1 || cfg.chunk < 1 || cfg.poll <= 0 || cfg.idle <= 0:
		log.Fatal("-samples, -chunk, -poll and -idle must be positive")
	}
	if err := os.MkdirAll(cfg.logDir, 0o755); err != nil {
		log.Fatal(err)
	}
	os.Exit(run(cfg))
}

func run(cfg config) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	be, err := startBackend()
	if err != nil {
		log.Print(err)
		return 1
	}
	defer be.close()
	b := &bench{cfg: cfg, backend: be}
	began := time.Now()
	var results []*result
	// Sizes outside, builds inside: the builds compared at one size are measured minutes apart,
	// not an hour apart, on this noisy machine.
	for _, n := range cfg.sizes {
		for _, bin := range cfg.bins {
			if ctx.Err() != nil {
				break
			}
			results = append(results, b.run(ctx, bin, n))
			if err := writeReport(cfg, began, results, false); err != nil {
				log.Print(err)
			}
		}
	}
	done := ctx.Err() == nil
	report := renderReport(cfg, began, results, done)
	fmt.Print("\n" + report)
	if err := writeReport(cfg, began, results, done); err != nil {
		log.Print(err)
		return 1
	}
	log.Printf("report written to %s", cfg.out)
	if !done {
		return 130
	}
	return 0
}

func writeReport(cfg config, began time.Time, results []*result, done bool) error {
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(cfg.out, []byte(renderReport(cfg, began, results, done)), 0o644)
}

func renderReport(cfg config, began time.Time, results []*result, done bool) string {
	var s strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&s, "# Propagation benchmark\n\n")
	fmt.Fprintf(&s, "Run %s on %s (%d cores), %s", began.Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), fmtDur(time.Since(began)))
	if !done {
		s.WriteString(", **incomplete** (interrupted or still running)")
	}
	fmt.Fprintf(&s, ". Command: `%s`.\n", cfg.command)
	fmt.Fprintf(&s, "%d PATCH samples per size (max_request_bytes flipped 1 MiB <-> 1 KiB, a 4 KiB probe every %s; p99 of %d samples is their nearest-rank 99th percentile); "+
		"bulk tenants inserted %d per statement; timeouts: %s per change, %s for a proxy to get ready; idle CPU over %s.\n",
		cfg.samples, cfg.poll, cfg.samples, cfg.chunk, fmtDur(cfg.sampleTimeout), fmtDur(cfg.readyTimeout), fmtDur(cfg.idle))
	s.WriteString("\n| build | tenants | PATCH->enforced p50 / p99 / max | cold proxy ready (readyz / last tenant) | RSS proxy / controlplane | controlplane idle CPU |\n")
	s.WriteString("| --- | ---: | --- | --- | --- | --- |\n")
	for _, r := range results {
		if r.err != "" && len(r.patch) == 0 && !r.coldMeasured {
			fmt.Fprintf(&s, "| %s | %s | error: %s | | | |\n", r.label, fmtInt(r.tenants), oneLine(r.err))
			continue
		}
		cold := "-"
		if r.coldMeasured {
			cold = readyCell(r.readyzOK, r.readyz, cfg) + " / " + readyCell(r.lastKnownOK, r.lastKnown, cfg)
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s / %s | %s |\n", r.label, fmtInt(r.tenants), patchCell(r, cfg), cold,
			fmtKB(r.rssProxy), fmtKB(r.rssCP), cpuCell(r.idleMeasured, r.cpIdle))
	}
	s.WriteString("\nDetails:\n\n| build | tenants | samples | PATCH call p50 | bulk insert + catch-up | cold proxy RSS | warm proxy idle CPU | notes |\n")
	s.WriteString("| --- | ---: | ---: | --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		var notes []string
		for _, n := range []string{r.warmLost, r.coldNote, r.err} {
			if n != "" {
				notes = append(notes, oneLine(n))
			}
		}
		call := "-"
		if len(r.patchCalls) > 0 {
			call = fmtDur(percentile(r.patchCalls, 0.5))
		}
		samples := fmt.Sprintf("%d", len(r.patch))
		if r.patchTimedOut {
			samples += " + 1 timeout"
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.label, fmtInt(r.tenants), samples, call,
			fmtDur(r.insert), fmtKB(r.rssCold), cpuCell(r.idleMeasured, r.proxyIdle), strings.Join(notes, "; "))
	}
	return s.String()
}

func patchCell(r *result, cfg config) string {
	if len(r.patch) == 0 {
		switch {
		case r.patchTimedOut:
			return fmt.Sprintf("never (timeout %s)", fmtDur(cfg.sampleTimeout))
		case r.warmLost != "":
			return "not measured (see notes)"
		default:
			return "-"
		}
	}
	cell := fmt.Sprintf("%s / %s / %s", fmtDur(percentile(r.patch, 0.5)), fmtDur(percentile(r.patch, 0.99)), fmtDur(slices.Max(r.patch)))
	if r.patchTimedOut {
		cell += fmt.Sprintf(" (%d samples, then one > %s)", len(r.patch), fmtDur(cfg.sampleTimeout))
	}
	return cell
}

func readyCell(ok bool, d time.Duration, cfg config) string {
	if !ok {
		return fmt.Sprintf("never (timeout %s)", fmtDur(cfg.readyTimeout))
	}
	return fmtDur(d)
}

func cpuCell(ok bool, v float64) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%% of a core", 100*v)
}

// percentile is the nearest-rank percentile p (0-1] of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", d.Seconds()*1000)
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", d.Seconds()*1000)
	case d%time.Second == 0:
		return fmt.Sprintf("%d s", d/time.Second)
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func fmtKB(kb int64) string {
	if kb <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
}

func fmtInt(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
