package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
)

// spool makes usage records durable before the response that they meter leaves the worker:
// each record is appended to a local file (write(2) puts it in the page cache, which survives the
// process being killed; the file is fsynced every second against machine crashes). A shipper
// moves closed segments to the catalog in batches, keyed by event id, so a record shipped twice
// (a crash between insert and delete) is counted once, and a catalog outage only delays shipping.
type spool struct {
	cfg spoolConfig
	dir string
	log *slog.Logger

	mu     sync.Mutex
	f      *os.File
	oldest time.Time // of the unshipped records

	lag     prometheus.GaugeFunc
	shipped prometheus.Counter
	failed  prometheus.Counter
}

// spoolConfig configures the usage spool.
type spoolConfig struct {
	// Dir holds the spool's files; it must survive a restart of the worker.
	Dir string
	// Ship commits a batch of records to the catalog and reports how many were new
	// (catalog.Store.RecordUsage).
	Ship func(context.Context, []ragplane.UsageEvent) (int, error)
	// Interval is the time between shipping rounds (default 1s); a failed round is retried at
	// the next one.
	Interval time.Duration
	// Now is the spool's clock: segment names and the lag metric (default time.Now).
	Now        func() time.Time
	Registerer prometheus.Registerer
	// Logger is the worker's root logger, not the worker's own: the spool names itself
	// component=usage, and a line must not carry two component keys.
	Logger *slog.Logger
}

// newSpool opens the spool in cfg.Dir.
func newSpool(cfg spoolConfig) (*spool, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	s := &spool{cfg: cfg, dir: cfg.Dir, log: cfg.Logger.With("component", "usage")}
	s.shipped = prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_usage_shipped_total",
		Help: "Usage records shipped to the catalog."})
	s.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_usage_ship_failures_total",
		Help: "Failed attempts to ship usage records (they are retried)."})
	s.lag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragplane_dataplane_usage_spool_lag_seconds",
		Help: "Age of the oldest usage record not yet in the catalog (0 when all are shipped)."}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.oldest.IsZero() {
			return 0
		}
		return s.cfg.Now().Sub(s.oldest).Seconds()
	})
	cfg.Registerer.MustRegister(s.shipped, s.failed, s.lag)
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *spool) open() error {
	f, err := os.OpenFile(filepath.Join(s.dir, "usage.active.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	s.f = f
	return nil
}

// append writes one record; an error means the record could not be made durable.
func (s *spool) append(e ragplane.UsageEvent) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return err
	}
	if s.oldest.IsZero() {
		s.oldest = e.At
	}
	return nil
}

// run ships every cfg.Interval until ctx ends, then once more.
func (s *spool) run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.ship(context.WithoutCancel(ctx))
			return
		case <-t.C:
			s.ship(ctx)
		}
	}
}

// ship closes the active segment and sends every closed segment to the catalog, oldest first;
// a segment is deleted only once Ship has confirmed the commit that holds its records (an error,
// including a commit whose outcome is unknown, keeps it for the next round). A confirmed commit
// survives a crash of the catalog's server because the worker refuses to start on one that
// acknowledges commits before flushing them (internal/durability).
func (s *spool) ship(ctx context.Context) {
	s.mu.Lock()
	if st, err := s.f.Stat(); err == nil && st.Size() > 0 {
		s.f.Sync()
		s.f.Close()
		name := filepath.Join(s.dir, fmt.Sprintf("usage.%d.jsonl", s.cfg.Now().UnixNano()))
		if err := os.Rename(filepath.Join(s.dir, "usage.active.jsonl"), name); err != nil {
			s.log.Error("usage spool rotate failed", "error", err)
		}
		if err := s.open(); err != nil {
			s.log.Error("usage spool reopen failed", "error", err)
		}
	} else {
		s.f.Sync()
	}
	s.mu.Unlock()

	segments, _ := filepath.Glob(filepath.Join(s.dir, "usage.[0-9]*.jsonl"))
	sort.Strings(segments)
	for _, seg := range segments {
		events, err := readSegment(seg)
		if err != nil {
			s.log.Error("usage segment unreadable; set aside", "segment", seg, "error", err)
			os.Rename(seg, seg+".bad")
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := s.cfg.Ship(sctx, events)
		cancel()
		if err != nil {
			s.failed.Inc()
			s.log.Warn("shipping usage failed; will retry", "error", err, "records", len(events))
			return
		}
		s.shipped.Add(float64(n))
		os.Remove(seg)
	}
	s.mu.Lock()
	if st, err := s.f.Stat(); err == nil && st.Size() == 0 {
		s.oldest = time.Time{}
	}
	s.mu.Unlock()
}

// readSegment parses a segment; a torn last line (a write cut by a crash) is skipped.
func readSegment(path string) ([]ragplane.UsageEvent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []ragplane.UsageEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e ragplane.UsageEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// usageRecord collects what a handler used; the usage writer turns it into an event.
type usageRecord struct {
	// id is the event's id: a query that reserved tokens uses its reservation's, so that shipping
	// the event ends the reservation (catalog.Store.RecordUsage); empty means a new one.
	id                            string
	mode, model                   string
	prompt, completion, embedding int
	documents, chunks             int
	// deferred records the event when finish is called rather than when the headers leave: a
	// stream's tokens are known only when it ends (or is cut off).
	deferred bool
	write    func()
}

// tokens is what the record bills against the monthly token quota.
func (r *usageRecord) tokens() int { return r.prompt + r.completion + r.embedding }

// finish writes a deferred record, once; it does nothing before the headers have left.
func (r *usageRecord) finish() {
	if w := r.write; w != nil {
		r.write = nil
		w()
	}
}

// usageWriter writes the request's usage record to the spool when the response header is about
// to be sent, so a worker killed right after answering has already recorded it (a deferred record,
// a stream's, when the handler finishes it).
type usageWriter struct {
	http.ResponseWriter
	s       *Server
	r       *http.Request
	rec     *usageRecord
	start   time.Time
	written bool
}

func (w *usageWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		if w.rec.deferred {
			w.rec.write = func() { w.s.recordUsage(w.r, w.rec, code, w.start) }
		} else {
			w.s.recordUsage(w.r, w.rec, code, w.start)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *usageWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *usageWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *usageWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) recordUsage(r *http.Request, rec *usageRecord, status int, start time.Time) {
	id, ok := ragplane.IdentityFromContext(r.Context())
	if !ok || s.spool == nil {
		return
	}
	rid := r.Header.Get("X-Request-ID")
	eid := rec.id
	if eid == "" {
		eid = ragplane.NewRequestID()
	}
	e := ragplane.UsageEvent{ID: eid, TenantID: id.TenantID, Subject: id.Subject,
		Route: r.Method + " " + routeOf(r.URL.Path), RetrievalMode: rec.mode, Model: rec.model,
		PromptTokens: rec.prompt, CompletionTokens: rec.completion, EmbeddingTokens: rec.embedding,
		DocumentsWritten: rec.documents, ChunksWritten: rec.chunks, LatencyMS: int(time.Since(start).Milliseconds()),
		Status: status, RequestID: rid, At: time.Now().UTC()}
	if err := s.spool.append(e); err != nil {
		s.log.Error("usage record could not be written", "tenant_id", id.TenantID, "error", err)
	}
}

// routeOf reduces a path to its route, so ids do not end up in usage records' route field.
func routeOf(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) > 3 && parts[2] == "documents" && parts[3] != "batch" {
		parts[3] = "{id}"
	}
	if len(parts) > 4 && parts[2] == "graph" {
		parts[4] = "{name}"
	}
	return strings.Join(parts, "/")
}
