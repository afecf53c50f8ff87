package provision

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// Offloading: a siloed tenant idle for ReconcilerConfig.OffloadAfter has its database written to
// an archive (a tenantdb snapshot: every row, ids and idempotency records included) in an
// ArchiveStore and dropped; a restore asked for by its first request or an operator
// (catalog.Store.Wake) provisions the database again, loads the archive and points the
// tenant at it. See migrations/010_tenant_offloads.sql for the states. Every step is safe to
// repeat, and a replica that lost the lead cannot run one beside the new leader: both take the
// tenant's data lock, as moves do.

// Offloader is implemented by provisioners whose siloed tenants can be offloaded: a database can
// be dropped while the tenant's role (and so its provisioning) stays, and reached with owner rights.
type Offloader interface {
	TierMover
	// DropDatabase drops the tenant's own database named by projectID, keeping its role.
	DropDatabase(ctx context.Context, tenant ragplane.TenantID, projectID string) error
}

// ArchiveStore keeps offloaded tenants' archives. Every control-plane replica must reach the same
// store (the leader offloads, and the next leader may restore).
type ArchiveStore interface {
	// Put stores an archive under name, its bytes written by write; the archive exists under name
	// only once write returned nil and its bytes are durable.
	Put(ctx context.Context, name string, write func(io.Writer) error) error
	// Open reads the archive stored under name.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Remove deletes the archive stored under name, and what an interrupted Put of it left; a
	// missing one is fine.
	Remove(ctx context.Context, name string) error
}

// DirStore is an ArchiveStore in a directory (a volume every control-plane replica mounts).
type DirStore struct{ Dir string }

func (d DirStore) path(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("offload store: %q is not an archive name", name)
	}
	return filepath.Join(d.Dir, name), nil
}

// Put writes the archive to a temporary file in the directory, syncs it, renames it to name and
// syncs the directory.
func (d DirStore) Put(ctx context.Context, name string, write func(io.Writer) error) error {
	final, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("offload store: %w", err)
	}
	f, err := os.CreateTemp(d.Dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("offload store: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("offload store: writing %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("offload store: %w", err)
	}
	dir, err := os.Open(d.Dir)
	if err != nil {
		return fmt.Errorf("offload store: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("offload store: syncing the directory: %w", err)
	}
	return nil
}

// Open opens the archive's file.
func (d DirStore) Open(_ context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("offload store: %w", err)
	}
	return f, nil
}

// Remove deletes the archive's file.
func (d DirStore) Remove(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("offload store: %w", err)
	}
	// What an interrupted Put of the same name left.
	left, _ := filepath.Glob(filepath.Join(d.Dir, "."+name+".tmp-*"))
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("offload store: %w", err)
		}
	}
	return nil
}

// ArchiveName is the name of an offload's archive in the store: the tenant and when the offload
// started, the same for every attempt.
func ArchiveName(o *catalog.Offload) string {
	return fmt.Sprintf("%s-%s.snapshot", o.TenantID, o.StartedAt.UTC().Format("20060102T150405.000000Z"))
}

// offloadHoldWait bounds the wait for a tenant's transactions in flight before its database is
// sealed for an offload: a tenant that is busy after all is left for the next pass.
const offloadHoldWait = 2 * time.Second

// offloadHook, when set (tests), is called at each step of an offload or restore: "sealed",
// "archived", "dropped", "loaded". An error stops it there, as a crash of the control plane would.
var offloadHook func(step string, tenant ragplane.TenantID) error

// SetOffloadHook sets offloadHook; it returns a function that restores the previous one.
func SetOffloadHook(h func(step string, tenant ragplane.TenantID) error) func() {
	old := offloadHook
	offloadHook = h
	return func() { offloadHook = old }
}

func offloadStep(step string, tenant ragplane.TenantID) error {
	if offloadHook == nil {
		return nil
	}
	return offloadHook(step, tenant)
}

// offloadState is the reconciler's part that offloads idle tenants and restores them.
type offloadState struct {
	offloads *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func (r *Reconciler) initOffload() {
	r.offl = &offloadState{
		offloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_controlplane_offloads_total",
			Help: "Offloads of idle tenants to archives and restores from them, by action (offload, restore, cancel) and result."},
			[]string{"action", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragplane_controlplane_offload_duration_seconds",
			Help:    "How long writing an idle tenant's archive (offload) or loading it into a new database (restore) took.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}, []string{"action"}),
	}
	if r.cfg.Registerer != nil {
		r.cfg.Registerer.MustRegister(r.offl.offloads, r.offl.duration)
	}
}

// offloaders are the providers whose tenants can be offloaded on this control plane.
func (r *Reconciler) offloaders() []ragplane.Provider {
	if r.cfg.OffloadAfter <= 0 || r.cfg.Archives == nil {
		return nil
	}
	var out []ragplane.Provider
	for name, p := range r.cfg.Provisioners {
		if _, ok := p.(Offloader); ok {
			out = append(out, name)
		}
	}
	return out
}

// startOffloads starts offloading the tenants idle for longer than OffloadAfter (run by the idle
// pass); dispatch then drives them.
func (r *Reconciler) startOffloads(ctx context.Context, now time.Time) {
	providers := r.offloaders()
	if len(providers) == 0 {
		return
	}
	ids, err := r.cfg.Store.StartOffloads(ctx, now.Add(-r.cfg.OffloadAfter), providers, idleBatch)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("starting offloads failed", "error", err)
		}
		return
	}
	for _, id := range ids {
		r.log.Info("offloading an idle tenant", "tenant_id", id, "offload_after", r.cfg.OffloadAfter.String())
	}
	if len(ids) > 0 {
		r.Kick()
	}
}

// offload drives a tenant's offload or restore one step further under the tenant's data lock.
func (r *Reconciler) offload(ctx context.Context, o *catalog.Offload) {
	log := r.log.With("tenant_id", o.TenantID)
	lctx, unlock, ok := r.lockTenantData(ctx, o.TenantID, log)
	if !ok {
		// Another replica works on the tenant's data (a leader that lost the lead finishing a
		// step): look again shortly rather than at every dispatch.
		if err := r.cfg.Store.RetryOffload(context.WithoutCancel(ctx), o.TenantID, "the tenant's data lock is held by another control-plane session",
			time.Now().Add(2*time.Second)); err != nil {
			log.Warn("scheduling the offload's retry failed", "error", err)
		}
		return
	}
	defer unlock()
	ctx = lctx
	o, err := r.cfg.Store.GetOffload(ctx, o.TenantID)
	if err != nil {
		if ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			log.Warn("reading the tenant's offload failed", "error", err)
		}
		return
	}
	action := "offload"
	if o.RestoreRequestedAt != nil {
		action = "restore"
	}
	start := time.Now()
	err = r.offloadStep(ctx, o, log)
	var c cancelled
	if errors.As(err, &c) {
		action, err = "cancel", c.err
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.offl.offloads.WithLabelValues(action, result).Inc()
	if err == nil {
		if action != "cancel" {
			r.offl.duration.WithLabelValues(action).Observe(time.Since(start).Seconds())
		}
		return
	}
	log.Warn("tenant offload step failed", "action", action, "state", o.State, "attempt", o.Attempts+1, "error", err)
	retry := r.backoff(o.Attempts + 1)
	if o.RestoreRequestedAt != nil {
		retry = min(retry, time.Second) // a request is waiting for it
	}
	if err := r.cfg.Store.RetryOffload(context.WithoutCancel(ctx), o.TenantID, r.reason(err), time.Now().Add(retry)); err != nil {
		log.Warn("scheduling the offload's retry failed", "error", err)
	}
}

func (r *Reconciler) offloadStep(ctx context.Context, o *catalog.Offload, log *slog.Logger) error {
	t, err := r.cfg.Store.GetTenant(ctx, o.TenantID)
	if err != nil {
		return err
	}
	p := r.cfg.Provisioners[t.Provider]
	off, ok := p.(Offloader)
	if !ok || r.cfg.Archives == nil {
		if o.State == catalog.OffloadOffloading {
			// A replica that could offload may have sealed the database already: unseal it.
			mover, _ := p.(TierMover)
			return cancelled{r.cancelOffload(ctx, o, mover, "this control plane has no offload store (RAGPLANE_OFFLOAD_DIR) or cannot offload tenants of provider "+string(t.Provider))}
		}
		return fmt.Errorf("tenant %s is offloaded, and this control plane has no offload store or provider %s", t.ID, t.Provider)
	}
	if t.Status != ragplane.StatusActive && t.Status != ragplane.StatusSuspended {
		// Deleting: the offboarding removes the archive and the row goes with the tenant.
		return nil
	}
	if o.State == catalog.OffloadOffloading {
		if o.RestoreRequestedAt != nil || t.Status != ragplane.StatusActive || t.ProviderProjectID != o.ProjectID {
			return cancelled{r.cancelOffload(ctx, o, off, "the tenant was woken or changed before its archive was written")}
		}
		start := time.Now()
		a, err := r.writeArchive(ctx, o, off)
		if errors.As(err, new(errNotOffloadable)) {
			return cancelled{r.cancelOffload(ctx, o, off, err.Error())}
		}
		if err != nil {
			return err
		}
		finished, err := r.cfg.Store.FinishOffload(ctx, o.TenantID, a)
		if err != nil {
			return err
		}
		if !finished { // woken while the archive was written: it is not needed
			if err := r.cfg.Archives.Remove(ctx, a.Name); err != nil {
				log.Warn("removing an unneeded archive failed", "archive", a.Name, "error", err)
			}
			return cancelled{r.cancelOffload(ctx, o, off, "the tenant was woken while its archive was written")}
		}
		log.Info("tenant offloaded to an archive", "archive", a.Name, "bytes", a.Bytes, "rows", a.Rows,
			"duration_ms", time.Since(start).Milliseconds())
		if err := offloadStep("archived", o.TenantID); err != nil {
			return err
		}
		o.State, o.Archive, o.Bytes, o.SchemaVersion, o.SHA256 = catalog.OffloadOffloaded, a.Name, a.Bytes, a.SchemaVersion, a.SHA256
	}
	if !o.Dropped {
		// The archive becomes the tenant's only copy: read it back from the store (this replica's
		// view of it, which the next leader shares) and check it whole before the database goes.
		if err := r.verifyArchive(ctx, o); err != nil {
			return err
		}
		if err := off.DropDatabase(ctx, o.TenantID, o.ProjectID); err != nil {
			return err
		}
		if err := r.cfg.Store.SetOffloadDropped(ctx, o.TenantID); err != nil {
			return err
		}
		log.Info("offloaded tenant's database dropped", "project_id", o.ProjectID)
		if err := offloadStep("dropped", o.TenantID); err != nil {
			return err
		}
	}
	if o.RestoreRequestedAt == nil {
		return nil
	}
	return r.restore(ctx, o, t, p, off, log)
}

// writeArchive seals the tenant's database (its transactions in flight finish first; new ones are
// refused from then on, and their workers read the catalog again, which says offloading) and
// writes every row of the tenant to a new archive.
func (r *Reconciler) writeArchive(ctx context.Context, o *catalog.Offload, off Offloader) (catalog.OffloadArchive, error) {
	var a catalog.OffloadArchive
	rt, err := r.cfg.Store.TenantRuntime(ctx, o.TenantID)
	if err != nil {
		return a, err
	}
	cfg, err := rt.Resolve(nil)
	if err != nil {
		return a, err
	}
	dimension := cfg.Settings.EmbeddingDimension
	url, err := off.OwnerURL(o.ProjectID)
	if err != nil {
		return a, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return a, transientOffload("connect to the tenant's database", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tenant := string(o.TenantID)
	if err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if err := tenantdb.Fence(ctx, tx, tenant, offloadHoldWait); err != nil {
			return err
		}
		// A worker still connected has a request in flight (one that began before the tenant was
		// marked idle, between its transactions) or background work (embedding): not idle after all.
		var others int
		if err := tx.QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			return errNotOffloadable{reason: fmt.Sprintf("the tenant's database is in use (%d other sessions connected)", others)}
		}
		// A database a restore could not rebuild is not offloaded: one being re-embedded (a second
		// vector column) or whose vector column is not the dimension the catalog provisions with.
		var vector string
		var reembedding bool
		if err := tx.QueryRow(ctx, `select format_type(a.atttypid, a.atttypmod),
				exists (select 1 from pg_attribute n where n.attrelid = 'chunks'::regclass and n.attname = 'embedding_next' and not n.attisdropped)
			from pg_attribute a where a.attrelid = 'chunks'::regclass and a.attname = 'embedding' and not a.attisdropped`).Scan(&vector, &reembedding); err != nil {
			return err
		}
		if want := fmt.Sprintf("vector(%d)", dimension); reembedding || vector != want {
			return errNotOffloadable{reason: fmt.Sprintf("the tenant's database is being re-embedded or its vectors are %s, not the %s a restore provisions", vector, want)}
		}
		return tenantdb.Seal(ctx, tx, tenant, "offload")
	}); err != nil {
		var notNow errNotOffloadable
		if errors.As(err, &notNow) {
			return a, err
		}
		return a, transientOffload("seal the tenant's database", err)
	}
	if err := offloadStep("sealed", o.TenantID); err != nil {
		return a, err
	}
	a.Name = ArchiveName(o) // the same for every attempt of this offload: a retry replaces what an interrupted one wrote
	var info tenantdb.SnapshotInfo
	err = r.cfg.Archives.Put(ctx, a.Name, func(w io.Writer) error {
		return pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			var err error
			info, err = tenantdb.Dump(ctx, tx, tenant, w)
			return err
		})
	})
	if err != nil {
		return a, transientOffload("write the tenant's archive", err)
	}
	a.Bytes, a.SHA256, a.SchemaVersion, a.Rows = info.Bytes, info.SHA256, info.SchemaVersion, info.Rows
	return a, nil
}

// cancelled is what an offload step returns when it cancelled the offload (err: how that went).
type cancelled struct{ err error }

func (c cancelled) Error() string { return "offload cancelled" }

// errNotOffloadable is an offload's finding that the tenant's database is not to be offloaded
// now: other sessions are connected to it, or a restore could not rebuild it.
type errNotOffloadable struct{ reason string }

func (e errNotOffloadable) Error() string { return e.reason }

// verifyArchive reads the offload's archive from the store and checks its size and SHA-256
// against the catalog's record of it.
func (r *Reconciler) verifyArchive(ctx context.Context, o *catalog.Offload) error {
	in, err := r.cfg.Archives.Open(ctx, o.Archive)
	if err != nil {
		return fmt.Errorf("the archive %s is not readable in the offload store, so the database stays: %w", o.Archive, err)
	}
	defer in.Close()
	h := sha256.New()
	n, err := io.Copy(h, in)
	if err != nil {
		return fmt.Errorf("reading the archive %s back: %w", o.Archive, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != o.Bytes || sum != o.SHA256 {
		return fmt.Errorf("the archive %s read back has %d bytes, SHA-256 %s; %d bytes, %s were written: the database stays", o.Archive, n, sum, o.Bytes, o.SHA256)
	}
	return nil
}

// cancelOffload unseals the tenant's database (when it still exists) and ends the offload.
func (r *Reconciler) cancelOffload(ctx context.Context, o *catalog.Offload, off TierMover, reason string) error {
	if off != nil {
		url, err := off.OwnerURL(o.ProjectID)
		if err != nil {
			return err
		}
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return transientOffload("connect to the tenant's database", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return tenantdb.Unseal(ctx, tx, string(o.TenantID)) }); err != nil {
			return transientOffload("unseal the tenant's database", err)
		}
	}
	r.log.Info("tenant offload cancelled", "tenant_id", o.TenantID, "reason", reason)
	return r.cfg.Store.CancelOffload(ctx, o.TenantID, reason)
}

// restore provisions the tenant's database again at the archive's schema version, loads the
// archive in one transaction (all or nothing: its checksum and row counts are checked before the
// commit), upgrades the schema to the latest and points the tenant at the database, which wakes it.
// A database left by an interrupted restore is dropped first.
func (r *Reconciler) restore(ctx context.Context, o *catalog.Offload, t *ragplane.Tenant, p Provisioner, off Offloader, log *slog.Logger) error {
	start := time.Now()
	rt, err := r.cfg.Store.TenantRuntime(ctx, t.ID)
	if err != nil {
		return err
	}
	cfg, err := rt.Resolve(nil)
	if err != nil {
		return err
	}
	if err := off.DropDatabase(ctx, t.ID, o.ProjectID); err != nil {
		return err
	}
	db, err := p.Provision(ctx, Request{TenantID: t.ID, Region: t.Region, ProjectID: o.ProjectID,
		EmbeddingDimension: cfg.Settings.EmbeddingDimension, SchemaVersion: o.SchemaVersion}, func(string) error { return nil })
	if err != nil {
		return err
	}
	if db.ProjectID != o.ProjectID {
		return fmt.Errorf("the restore provisioned %s, not the offloaded %s", db.ProjectID, o.ProjectID)
	}
	url, err := off.OwnerURL(db.ProjectID)
	if err != nil {
		return err
	}
	info, err := r.loadArchive(ctx, url, o)
	if err != nil {
		return err
	}
	if err := offloadStep("loaded", t.ID); err != nil {
		return err
	}
	version := db.SchemaVersion
	if latest := tenantdb.LatestVersion(); version < latest {
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return transientOffload("connect to the restored database", err)
		}
		version, err = tenantdb.MigrateSilo(ctx, conn, cfg.Settings.EmbeddingDimension, string(t.ID))
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return transientOffload("upgrade the restored database", err)
		}
	}
	if err := r.cfg.Store.FinishRestore(ctx, t.ID, db.ProjectID, db.URL, version); err != nil {
		return err
	}
	log.Info("offloaded tenant restored", "archive", o.Archive, "rows", info.Rows, "schema_version", version,
		"waited_ms", time.Since(*o.RestoreRequestedAt).Milliseconds(), "duration_ms", time.Since(start).Milliseconds())
	if err := r.cfg.Archives.Remove(ctx, o.Archive); err != nil {
		log.Warn("removing a restored tenant's archive failed", "archive", o.Archive, "error", err)
	}
	return nil
}

// loadArchive loads the offload's archive into the database at url (owner rights), checking it
// against the catalog's record of it.
func (r *Reconciler) loadArchive(ctx context.Context, url string, o *catalog.Offload) (tenantdb.SnapshotInfo, error) {
	var info tenantdb.SnapshotInfo
	in, err := r.cfg.Archives.Open(ctx, o.Archive)
	if err != nil {
		return info, err
	}
	defer in.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return info, transientOffload("connect to the restored database", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// A new database is seeded with rows of the tenant (its default text search configuration):
		// the archive holds them as they were.
		for _, tb := range tenantdb.TenantTables { // children first
			if _, err := tx.Exec(ctx, `delete from `+pgx.Identifier{tb}.Sanitize()+` where tenant_id = $1`, string(o.TenantID)); err != nil {
				return err
			}
		}
		rebuild, err := tenantdb.DeferIndexes(ctx, tx)
		if err != nil {
			return err
		}
		if info, err = tenantdb.Load(ctx, tx, string(o.TenantID), in); err != nil {
			return err
		}
		if err := rebuild(); err != nil {
			return err
		}
		if info.SHA256 != o.SHA256 {
			return fmt.Errorf("the archive's checksum %s is not the one recorded at the offload, %s", info.SHA256, o.SHA256)
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("loading the archive %s: %w", o.Archive, err)
	}
	return info, nil
}

func transientOffload(step string, err error) error {
	return fmt.Errorf("%w (%w)", ragplane.Errorf(ragplane.EUNAVAILABLE, "Offloading or restoring the tenant failed to %s; it will be retried.", step), err)
}
