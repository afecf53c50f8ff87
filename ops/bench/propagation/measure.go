package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// result is what one build measured at one catalog size.
type result struct {
	label   string
	tenants int
	err     string

	insert   time.Duration // bulk insert, including the warm proxy's catch-up after each chunk
	warmLost string        // why PATCH samples could not be taken, if they could not

	patch         []time.Duration // PATCH sent -> proxy enforces, one per sample
	patchCalls    []time.Duration // the PATCH request alone
	patchTimedOut bool            // the last sample never saw its change within the timeout

	readyz, lastKnown     time.Duration
	readyzOK, lastKnownOK bool
	coldMeasured          bool
	coldNote              string

	rssProxy, rssCP, rssCold int64 // KiB
	idleMeasured             bool
	cpIdle, proxyIdle        float64 // CPU seconds per second
}

// bench holds what every size of every build shares.
type bench struct {
	cfg     config
	backend *backend
	seq     int
}

// run measures one build at one catalog size, from a fresh catalog database, and removes
// everything it started before returning.
func (b *bench) run(ctx context.Context, bin binary, n int) *result {
	r := &result{label: bin.label, tenants: n}
	if err := b.measure(ctx, bin, n, r); err != nil {
		r.err = err.Error()
		log.Printf("[%s %d] failed: %v", bin.label, n, err)
	}
	return r
}

func (b *bench) measure(ctx context.Context, bin binary, n int, r *result) error {
	if n < 2 {
		return errors.New("a catalog size must be at least 2 (the probe tenant and the last one)")
	}
	cfg := b.cfg
	b.seq++
	tag := fmt.Sprintf("%s-%d", bin.short, n)
	logf := func(format string, args ...any) {
		log.Printf("[%s %d] "+format, append([]any{bin.label, n}, args...)...)
	}
	// Names no other script or test cleans up (ops/bench/proxy.sh drops pbench_*, tests rp_* and
	// random prefixes, the demo demo_*), unique to this process and size.
	dbName := fmt.Sprintf("propbench_%d_%d", os.Getpid(), b.seq)
	prefix := dbName + "_t_"

	// A fresh catalog, dropped at the end with the tenant databases made under our prefix.
	if err := cfg.server.createDB(ctx, dbName); err != nil {
		return fmt.Errorf("create the catalog database: %w", err)
	}
	defer func() {
		if err := cfg.server.dropAll(dbName, prefix); err != nil {
			logf("cleanup: %v", err)
		}
	}()
	catalogURL, err := cfg.server.dbURL(dbName)
	if err != nil {
		return err
	}

	// The control plane, migrating the catalog at start.
	adminAddr, err1 := freeAddr()
	xdsAddr, err2 := freeAddr()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	adminToken, secretKey, internalKey := randomHex(24), randomHex(32), randomHex(32)
	cp, err := startProc("controlplane", bin.path, childEnv(map[string]string{
		"DATABASE_URL": catalogURL, "REDIS_URL": cfg.redisURL,
		"RAGPLANE_LOCAL_ADMIN_URL": cfg.server.url, "RAGPLANE_LOCAL_PREFIX": prefix,
		"RAGPLANE_ADMIN_ADDR": adminAddr, "RAGPLANE_XDS_ADDR": xdsAddr,
		"RAGPLANE_ADMIN_TOKEN": adminToken, "RAGPLANE_SECRET_KEY": secretKey, "RAGPLANE_INTERNAL_KEY": internalKey,
		"RAGPLANE_TOKEN_TTL": "1h",
	}), filepath.Join(cfg.logDir, tag+"-controlplane.log"), "controlplane")
	if err != nil {
		return err
	}
	defer cp.stop()
	a := &admin{base: "http://" + adminAddr, token: adminToken, hc: &http.Client{}}
	defer a.hc.CloseIdleConnections()
	if _, ok := waitUntil(ctx, cp.started.Add(cfg.readyTimeout), 20*time.Millisecond, cp.exited, func() bool {
		return a.call(ctx, http.MethodGet, "/readyz", "", nil, nil, http.StatusOK) == nil
	}); !ok {
		return fmt.Errorf("the control plane did not get ready:\n%s", cp.tail(5))
	}

	stopWorker, err := b.backend.register(ctx, a, internalKey, "bench-backend")
	if err != nil {
		return err
	}
	defer stopWorker()

	// The probe tenant, created first, through the admin API.
	probeKey, err := a.createTenant(ctx, "bench_probe", cfg.readyTimeout)
	if err != nil {
		return err
	}
	probeToken, err := a.mintToken(ctx, probeKey)
	if err != nil {
		return err
	}

	// The warm proxy: started while the catalog is small, so that it can follow the catalog as it
	// grows even where a cold proxy cannot start (the "before" code above ~7,300 tenants).
	startProxy := func(name string) (*proc, *prober, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, nil, err
		}
		p, err := startProc(name, bin.path, childEnv(map[string]string{
			"REDIS_URL": cfg.redisURL, "RAGPLANE_REDIS_PREFIX": dbName + ":",
			"RAGPLANE_PROXY_ADDR": addr, "RAGPLANE_XDS_ADDR": xdsAddr, "RAGPLANE_NODE_ID": fmt.Sprintf("bench-%s-%d", name, os.Getpid()),
			"RAGPLANE_INTERNAL_KEY": internalKey,
		}), filepath.Join(cfg.logDir, tag+"-"+name+".log"), "proxy")
		if err != nil {
			return nil, nil, err
		}
		return p, newProber(addr), nil
	}
	warm, wp, err := startProxy("proxy-warm")
	if err != nil {
		return err
	}
	defer warm.stop()
	defer wp.close()
	if _, ok := waitUntil(ctx, warm.started.Add(cfg.readyTimeout), 5*time.Millisecond, warm.exited, func() bool {
		return wp.status(ctx, probeToken) == http.StatusOK
	}); !ok {
		return fmt.Errorf("the warm proxy did not pass a request within %s:\n%s", cfg.readyTimeout, warm.tail(5))
	}
	t := &toggler{a: a, p: wp, token: probeToken, tenant: "bench_probe", poll: cfg.poll, timeout: cfg.sampleTimeout}

	// The bulk tenants, in chunks; after each chunk one change to the probe tenant must reach the
	// warm proxy before the next chunk goes in. That keeps every xDS update to about a chunk's
	// worth of tenants and proves the proxy kept up. The "before" code sends all the changed
	// policies in one message of about 570 bytes a tenant, under gRPC's 4 MiB limit up to ~7,300
	// tenants, so the default chunk (4,000) keeps it well below.
	conn, err := pgx.Connect(ctx, catalogURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	bulk, synced, start := n-2, true, time.Now()
	for from := 1; from <= bulk; from += cfg.chunk {
		to := min(from+cfg.chunk-1, bulk)
		if err := insertBulk(ctx, conn, from, to); err != nil {
			return fmt.Errorf("insert bulk tenants: %w", err)
		}
		if !synced {
			continue
		}
		d, _, err := t.flip(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			synced = false
			r.warmLost = fmt.Sprintf("warm proxy stopped following changes at %d tenants (%v)", to+1, err)
			logf("%s", r.warmLost)
		default:
			logf("%d tenants in the catalog; the warm proxy enforced a change %s after the insert", to+1, fmtDur(d))
		}
	}
	r.insert = time.Since(start)

	// The last tenant, created through the admin API after every other one.
	lastKey, err := a.createTenant(ctx, "bench_last", cfg.readyTimeout)
	if err != nil {
		return err
	}

	// PATCH -> enforced, alternating a restriction and its removal.
	if synced {
		logf("%d PATCH samples", cfg.samples)
		for i := 0; i < cfg.samples; i++ {
			d, call, err := t.flip(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.patchTimedOut = true
				logf("sample %d: %v; no further samples", i+1, err)
				break
			}
			r.patch = append(r.patch, d)
			r.patchCalls = append(r.patchCalls, call)
			if err := sleep(ctx, cfg.gap); err != nil {
				return err
			}
		}
	}

	// Idle: nothing changes; what do the control plane and the warm proxy cost?
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	logf("idle for %s", cfg.idle)
	cp0, errA := cpuTime(cp.pid())
	px0, errB := cpuTime(warm.pid())
	if err := sleep(ctx, cfg.idle); err != nil {
		return err
	}
	cp1, errC := cpuTime(cp.pid())
	px1, errD := cpuTime(warm.pid())
	if errors.Join(errA, errB, errC, errD) == nil {
		r.idleMeasured = true
		r.cpIdle = (cp1 - cp0).Seconds() / cfg.idle.Seconds()
		r.proxyIdle = (px1 - px0).Seconds() / cfg.idle.Seconds()
	}
	r.rssCP, r.rssProxy = rssKB(cp.pid()), rssKB(warm.pid())

	// A cold proxy: time to /readyz and to enforcing the last tenant's policy.
	lastToken, err := a.mintToken(ctx, lastKey)
	if err != nil {
		return err
	}
	logf("cold proxy")
	cold, cpb, err := startProxy("proxy-cold")
	if err != nil {
		return err
	}
	defer cold.stop()
	defer cpb.close()
	deadline := cold.started.Add(cfg.readyTimeout)
	readyCh := make(chan time.Time, 1)
	var ready atomic.Bool
	go func() {
		at, ok := waitUntil(ctx, deadline, 5*time.Millisecond, cold.exited, func() bool { return cpb.readyz(ctx) == http.StatusOK })
		ready.Store(ok)
		readyCh <- at
	}()
	// A ready proxy answers 401 for a tenant it does not know; anything else (normally 200, or a
	// 429/503 of the limiter) means it has the tenant's policy.
	at, ok := waitUntil(ctx, deadline, 5*time.Millisecond, cold.exited, func() bool {
		if !ready.Load() {
			return false
		}
		s := cpb.status(ctx, lastToken)
		return s != 0 && s != http.StatusUnauthorized
	})
	r.lastKnown, r.lastKnownOK = at.Sub(cold.started), ok
	rat := <-readyCh
	r.readyz, r.readyzOK = rat.Sub(cold.started), !rat.IsZero()
	r.coldMeasured = ctx.Err() == nil
	r.rssCold = rssKB(cold.pid())
	if cold.exited() {
		r.coldNote = "cold proxy exited: " + cold.tail(1)
	}
	return ctx.Err()
}

// toggler flips the probe tenant's max_request_bytes between relaxed and restricted and times how
// long the proxy takes to enforce each flip.
type toggler struct {
	a          *admin
	p          *prober
	token      string
	tenant     string
	poll       time.Duration
	timeout    time.Duration
	restricted bool
}

// flip sends one PATCH and polls the proxy until it answers as the new limit requires (413 for
// the restricted limit, 200 for the relaxed one). It returns the time from sending the PATCH to
// the first such answer, and how long the PATCH call itself took.
func (t *toggler) flip(ctx context.Context) (enforced, call time.Duration, err error) {
	target := !t.restricted
	limit := relaxedBytes
	if target {
		limit = restrictedBytes
	}
	// The size check comes before the rate limits, the concurrency cap and forwarding, so any
	// answer other than 413 from a proxy that knows the tenant (not 401) shows the relaxed limit
	// in force, even a 503 of a proxy that is having trouble with Redis at that moment.
	enforcedBy := func(status int) bool {
		if target {
			return status == http.StatusRequestEntityTooLarge
		}
		return status != 0 && status != http.StatusUnauthorized && status != http.StatusRequestEntityTooLarge
	}
	t0 := time.Now()
	if err := t.a.setMaxRequestBytes(ctx, t.tenant, limit); err != nil {
		return 0, 0, err
	}
	call = time.Since(t0)
	if _, ok := waitUntil(ctx, t0.Add(t.timeout), t.poll, nil, func() bool { return enforcedBy(t.p.status(ctx, t.token)) }); !ok {
		if ctx.Err() != nil {
			return 0, call, ctx.Err()
		}
		return 0, call, fmt.Errorf("not enforced within %s", t.timeout)
	}
	t.restricted = target
	return time.Since(t0), call, nil
}

// waitUntil calls cond every interval until it holds (returning when), the deadline passes, ctx
// ends or abort (if set) holds.
func waitUntil(ctx context.Context, deadline time.Time, every time.Duration, abort, cond func() bool) (time.Time, bool) {
	for {
		if cond() {
			return time.Now(), true
		}
		if time.Now().After(deadline) || ctx.Err() != nil || (abort != nil && abort()) {
			return time.Time{}, false
		}
		if sleep(ctx, every) != nil {
			return time.Time{}, false
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
