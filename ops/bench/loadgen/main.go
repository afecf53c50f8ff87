// Command loadgen sends requests at a constant rate (open loop) and prints their latency
// percentiles as one JSON line: the half-load step of ops/bench/proxy.sh, which wrk cannot do
// (it is closed loop: a slow response delays the next request, hiding latency).
//
// The schedule is vegeta's (github.com/tsenart/vegeta): a request is due every 1/rate, and when
// every worker is busy another one starts (up to -max-workers), so a slow server does not lower
// the offered rate. A run whose throughput stays under its rate could not offer that rate.
// Latency is measured from when the request is sent to the end of its body; percentiles are
// exact (every latency kept and sorted).
//
//	go run ./ops/bench/loadgen -url http://127.0.0.1:9000/ -rate 5000 -duration 10s -H 'Authorization: Bearer ...'
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

// report is the JSON line printed at the end; latencies in microseconds.
type report struct {
	Rate       int     `json:"rate"`
	Duration   float64 `json:"duration_s"`
	Requests   int     `json:"requests"`
	Throughput float64 `json:"throughput"`
	OK         int     `json:"ok"`
	Non2xx     int     `json:"non2xx"`
	Errors     int     `json:"errors"`
	P50        float64 `json:"p50_us"`
	P90        float64 `json:"p90_us"`
	P99        float64 `json:"p99_us"`
	P999       float64 `json:"p999_us"`
	Max        float64 `json:"max_us"`
	// CPU is this load generator's own CPU time per request (it shares the machine).
	CPU        float64 `json:"loadgen_cpu_us_per_request"`
	FirstError string  `json:"first_error,omitempty"`
}

func main() {
	target := flag.String("url", "", "URL to GET")
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", time.Second, "unmeasured warm-up at the same rate first")
	conns := flag.Int("connections", 64, "idle keep-alive connections kept per host (more open if all are busy)")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	maxWorkers := flag.Uint64("max-workers", 1024, "most requests in flight; past it the offered rate drops (reported as throughput below rate)")
	var hs headers
	flag.Var(&hs, "H", "request header 'Name: value' (repeatable)")
	flag.Parse()
	if *target == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -url and a positive -rate are required")
		os.Exit(2)
	}
	h := http.Header{}
	for _, v := range hs {
		name, val, ok := strings.Cut(v, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "loadgen: bad header %q\n", v)
			os.Exit(2)
		}
		h.Add(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: *target, Header: h})
	// One client for the warm-up and the measured attack, so the second starts with warm
	// keep-alive connections (an attacker cannot be reused: it stops for good after one attack).
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: *conns,
		IdleConnTimeout:     time.Minute,
	}}
	attacker := func() *vegeta.Attacker {
		return vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(uint64(*conns)), vegeta.MaxWorkers(*maxWorkers),
			vegeta.MaxBody(4096))
	}
	pace := vegeta.Rate{Freq: *rate, Per: time.Second}

	if *warmup > 0 {
		for range attacker().Attack(tr, pace, *warmup, "warmup") {
		}
	}
	lat := make([]time.Duration, 0, int(float64(*rate)*duration.Seconds())+16)
	rep := report{Rate: *rate}
	cpu0 := cpuTime()
	start := time.Now()
	var last time.Time
	for res := range attacker().Attack(tr, pace, *duration, "measure") {
		rep.Requests++
		lat = append(lat, res.Latency)
		if end := res.End(); end.After(last) {
			last = end
		}
		switch {
		case res.Error != "" && res.Code == 0:
			rep.Errors++
			if rep.FirstError == "" {
				rep.FirstError = res.Error
			}
		case res.Code >= 200 && res.Code < 300:
			rep.OK++
		default:
			rep.Non2xx++
			if rep.FirstError == "" {
				rep.FirstError = fmt.Sprintf("status %d", res.Code)
			}
		}
	}
	if rep.Requests > 0 {
		rep.CPU = float64(cpuTime()-cpu0) / float64(time.Microsecond) / float64(rep.Requests)
	}
	elapsed := last.Sub(start)
	if elapsed <= 0 {
		elapsed = time.Since(start)
	}
	rep.Duration = elapsed.Seconds()
	rep.Throughput = float64(rep.OK) / elapsed.Seconds()
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p * float64(len(lat)-1))
		return float64(lat[i]) / float64(time.Microsecond)
	}
	rep.P50, rep.P90, rep.P99, rep.P999 = q(0.50), q(0.90), q(0.99), q(0.999)
	if len(lat) > 0 {
		rep.Max = float64(lat[len(lat)-1]) / float64(time.Microsecond)
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
}

// cpuTime is the user+system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
