// Package archive writes a tenant's data as a portable archive and loads one into another tenant's
// database, in either tier. The control plane (export and restore by operators) and data-plane
// workers (a tenant's own export) share it.
//
// An archive is JSON lines (application/x-ndjson), one record per line, each with a "type":
//
//	manifest     first: format, version, source tenant, settings, embedding provider/model/dimension
//	text_config  a text-search configuration the tenant's documents use
//	document     a document: id, title, source, metadata, content, content hash, status, times
//	chunk        a chunk: id, document id, ordinal, content, tokens, title, embedding (or null)
//	entity       a graph entity
//	relation     a graph fact between two entities with its validity times (valid_at, invalid_at,
//	             expired_at)
//	usage        a usage record of the source tenant (from the catalog)
//	end          last: the count of each record type and the SHA-256 of every byte before this line
//
// A reader trusts nothing until the end record: Restore writes in one transaction and its caller
// commits only when the counts and checksum match. An export cut short has no end record and is
// refused whole.
package archive

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
)

// Format names the archive format in its manifest.
const Format = "ragplane-tenant-archive"

// Version is the archive format version this build writes and reads.
const Version = 1

// MediaType is an archive's content type.
const MediaType = "application/x-ndjson"

// MaxLine bounds one record (a document's whole text is one line): a longer line is refused, so
// a reader's memory stays bounded by it.
const MaxLine = 64 << 20

// setTenant is tenantdb's per-transaction tenant (catalog/tenantdb/scope.go): row level security
// shows and accepts that tenant's rows only, in a silo and in a pool alike, and a database the
// tenant has moved out of refuses it (SQLSTATE RPM01) rather than export or restore stale rows.
const setTenant = `select ragplane_enter($1)`

// Manifest is an archive's first record.
type Manifest struct {
	Type               string             `json:"type"`
	Format             string             `json:"format"`
	Version            int                `json:"version"`
	TenantID           ragplane.TenantID  `json:"tenant_id"`
	Plan               string             `json:"plan,omitempty"`
	ExportedAt         time.Time          `json:"exported_at"`
	Settings           ragplane.Overrides `json:"settings"`
	Limits             ragplane.Overrides `json:"limits"`
	EmbeddingProvider  string             `json:"embedding_provider"`
	EmbeddingModel     string             `json:"embedding_model"`
	EmbeddingDimension int                `json:"embedding_dimension"`
}

// Counts is the number of records of each type.
type Counts struct {
	TextConfigs int `json:"text_configs"`
	Documents   int `json:"documents"`
	Chunks      int `json:"chunks"`
	Entities    int `json:"entities"`
	Relations   int `json:"relations"`
	Usage       int `json:"usage"`
}

type end struct {
	Type   string `json:"type"`
	Counts Counts `json:"counts"`
	SHA256 string `json:"sha256"`
}

type textConfig struct {
	Type   string `json:"type"`
	Config string `json:"config"`
}

type document struct {
	Type        string          `json:"type"`
	ID          uuid.UUID       `json:"id"`
	Title       string          `json:"title"`
	Source      string          `json:"source"`
	ContentHash []byte          `json:"content_hash"`
	Metadata    json.RawMessage `json:"metadata"`
	Bytes       int64           `json:"bytes"`
	ChunkCount  int             `json:"chunk_count"`
	Content     string          `json:"content"`
	TextConfig  string          `json:"text_config"`
	Status      string          `json:"status"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

type chunk struct {
	Type       string          `json:"type"`
	ID         uuid.UUID       `json:"id"`
	DocumentID uuid.UUID       `json:"document_id"`
	Ordinal    int             `json:"ordinal"`
	Content    string          `json:"content"`
	Tokens     int             `json:"tokens"`
	Title      string          `json:"title"`
	TextConfig string          `json:"text_config"`
	Embedding  json.RawMessage `json:"embedding"` // pgvector's text form is a JSON array; null while deferred
}

type entity struct {
	Type      string    `json:"type"`
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	NormName  string    `json:"norm_name"`
	Kind      string    `json:"kind"`
	Summary   string    `json:"summary"`
	CreatedAt time.Time `json:"created_at"`
}

type relation struct {
	Type       string     `json:"type"`
	ID         uuid.UUID  `json:"id"`
	SourceID   uuid.UUID  `json:"source_id"`
	TargetID   uuid.UUID  `json:"target_id"`
	Relation   string     `json:"relation"`
	Fact       string     `json:"fact"`
	ChunkID    *uuid.UUID `json:"chunk_id"`
	DocumentID *uuid.UUID `json:"document_id"`
	ValidAt    *time.Time `json:"valid_at"`
	InvalidAt  *time.Time `json:"invalid_at"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiredAt  *time.Time `json:"expired_at"`
}

type usage struct {
	Type string `json:"type"`
	ragplane.UsageEvent
}

// Beginner starts transactions: a *pgx.Conn or a *pgxpool.Pool.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Begin starts a transaction scoped to tenant in the database behind db: read only on one
// snapshot (repeatable read) for an export, read-write for a restore.
func Begin(ctx context.Context, db Beginner, tenant ragplane.TenantID, readOnly bool) (pgx.Tx, error) {
	opts := pgx.TxOptions{IsoLevel: pgx.ReadCommitted} // what ragplane_enter needs of a writer
	if readOnly {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, setTenant, string(tenant)); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// UsageFunc streams the source tenant's usage records to fn (catalog.Store.ExportUsage).
type UsageFunc func(ctx context.Context, fn func(ragplane.UsageEvent) error) error

// writer hashes what it writes and buffers it.
type writer struct {
	bw  *bufio.Writer
	sum hash.Hash
}

func (w *writer) record(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.sum.Write(b)
	_, err = w.bw.Write(b)
	return err
}

// Export writes the archive of the tenant whose rows tx sees (see Begin) to out: m first, then
// its text configs, documents, chunks, graph and usage records, then the end record. Rows are
// streamed: memory stays bounded by one row.
func Export(ctx context.Context, tx pgx.Tx, m Manifest, usageOf UsageFunc, out io.Writer) (Counts, error) {
	w := &writer{bw: bufio.NewWriterSize(out, 64<<10), sum: sha256.New()}
	var n Counts
	m.Type, m.Format, m.Version = "manifest", Format, Version
	if m.ExportedAt.IsZero() {
		m.ExportedAt = time.Now().UTC()
	}
	if err := w.record(m); err != nil {
		return n, err
	}
	each := func(sql string, scan func(pgx.Rows) (any, error), count *int) error {
		rows, err := tx.Query(ctx, sql)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			if err := w.record(v); err != nil {
				return err
			}
			*count++
		}
		return rows.Err()
	}
	steps := []struct {
		sql   string
		scan  func(pgx.Rows) (any, error)
		count *int
	}{
		{`select config::text from text_configs order by 1`, func(r pgx.Rows) (any, error) {
			v := textConfig{Type: "text_config"}
			return v, r.Scan(&v.Config)
		}, &n.TextConfigs},
		{`select id, title, source, content_hash, metadata::text, bytes, chunk_count, content, text_config::text, status,
			created_at, updated_at from documents order by created_at, id`, func(r pgx.Rows) (any, error) {
			v := document{Type: "document"}
			var meta string
			err := r.Scan(&v.ID, &v.Title, &v.Source, &v.ContentHash, &meta, &v.Bytes, &v.ChunkCount, &v.Content,
				&v.TextConfig, &v.Status, &v.CreatedAt, &v.UpdatedAt)
			v.Metadata = json.RawMessage(meta)
			return v, err
		}, &n.Documents},
		{`select id, document_id, ordinal, content, tokens, title, text_config::text, embedding::text
			from chunks order by document_id, ordinal`, func(r pgx.Rows) (any, error) {
			v := chunk{Type: "chunk"}
			var emb *string
			err := r.Scan(&v.ID, &v.DocumentID, &v.Ordinal, &v.Content, &v.Tokens, &v.Title, &v.TextConfig, &emb)
			v.Embedding = json.RawMessage("null")
			if emb != nil {
				v.Embedding = json.RawMessage(*emb)
			}
			return v, err
		}, &n.Chunks},
		{`select id, name, norm_name, kind, summary, created_at from entities order by created_at, id`, func(r pgx.Rows) (any, error) {
			v := entity{Type: "entity"}
			return v, r.Scan(&v.ID, &v.Name, &v.NormName, &v.Kind, &v.Summary, &v.CreatedAt)
		}, &n.Entities},
		{`select id, source_id, target_id, relation, fact, chunk_id, document_id, valid_at, invalid_at, created_at, expired_at
			from relations order by created_at, id`, func(r pgx.Rows) (any, error) {
			v := relation{Type: "relation"}
			return v, r.Scan(&v.ID, &v.SourceID, &v.TargetID, &v.Relation, &v.Fact, &v.ChunkID, &v.DocumentID,
				&v.ValidAt, &v.InvalidAt, &v.CreatedAt, &v.ExpiredAt)
		}, &n.Relations},
	}
	for _, s := range steps {
		if err := each(s.sql, s.scan, s.count); err != nil {
			return n, err
		}
	}
	if usageOf != nil {
		err := usageOf(ctx, func(e ragplane.UsageEvent) error {
			n.Usage++
			return w.record(usage{Type: "usage", UsageEvent: e})
		})
		if err != nil {
			return n, err
		}
	}
	if err := w.record(end{Type: "end", Counts: n, SHA256: hex.EncodeToString(w.sum.Sum(nil))}); err != nil {
		return n, err
	}
	return n, w.bw.Flush()
}

// MapID is the id a restore into tenant gives a row whose id was old in the archive: a name-based
// UUID (version 5) of old in the target tenant's namespace. It is deterministic, so a restored
// document's id is known from its exported one, and two restores of one archive into different
// tenants of one pool never collide.
func MapID(tenant ragplane.TenantID, old uuid.UUID) uuid.UUID {
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("ragplane:tenant:"+string(tenant)))
	return uuid.NewSHA1(ns, old[:])
}

// Error is a bad archive: refused with nothing written. Line is its 1-based line (0: the whole).
type Error struct {
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return "archive: " + e.Reason
	}
	return fmt.Sprintf("archive line %d: %s", e.Line, e.Reason)
}

// Problem is the error as the API reports it: EINVALID naming the line.
func (e *Error) Problem() error {
	if e.Line == 0 {
		return ragplane.FieldErrorf("archive", "The archive is not valid: %s.", e.Reason)
	}
	return ragplane.FieldErrorf("archive", "The archive is not valid at line %d: %s.", e.Line, e.Reason)
}

// Result is what a restore loaded and what it left out.
type Result struct {
	Manifest Manifest `json:"-"`
	Restored Counts   `json:"restored"`
	// SkippedUsage counts the source tenant's usage records: they stay the source tenant's for
	// billing and are not charged to the target.
	SkippedUsage int `json:"skipped_usage"`
}

// Restore loads the archive from in into the tenant whose rows tx sees (see Begin), whose
// database must hold none yet (ECONFLICT). check is called with the manifest before any row is
// written; an error from it is returned as is. Row ids are mapped with MapID. Everything is written
// in tx, and Restore returns nil only when the end record's counts and checksum match what was
// read: the caller commits then, and rolls back otherwise. Bad archives return *Error.
func Restore(ctx context.Context, tx pgx.Tx, target ragplane.TenantID, in io.Reader, check func(Manifest) error) (*Result, error) {
	var empty bool
	if err := tx.QueryRow(ctx, `select not exists(select 1 from documents) and not exists(select 1 from entities)`).Scan(&empty); err != nil {
		return nil, err
	}
	if !empty {
		return nil, ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q already holds documents or graph facts: restore only into a new tenant.", target)
	}
	r := bufio.NewReaderSize(in, 64<<10)
	sum := sha256.New()
	res := &Result{}
	var got Counts
	line := 0
	id := func(old uuid.UUID) uuid.UUID { return MapID(target, old) }
	optID := func(old *uuid.UUID) *uuid.UUID {
		if old == nil {
			return nil
		}
		v := id(*old)
		return &v
	}
	bad := func(reason string, args ...any) error {
		return &Error{Line: line, Reason: fmt.Sprintf(reason, args...)}
	}
	dbErr := func(err error) error {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code[:2] == "22" || pe.Code[:2] == "23" || pe.Code == "42704") {
			// data exceptions, integrity violations, an unknown text config: the archive's fault
			return bad("the record does not fit the tenant's schema (%s)", pe.Code)
		}
		return err
	}
	for {
		b, err := readLine(r)
		if err == io.EOF {
			if line == 0 {
				return nil, &Error{Reason: "it is empty"}
			}
			return nil, &Error{Reason: "it ends without its end record (cut short?)"}
		}
		line++
		if err != nil {
			if errors.Is(err, errLong) {
				return nil, bad("longer than %d bytes", MaxLine)
			}
			return nil, err
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return nil, bad("not a JSON record")
		}
		if line == 1 && head.Type != "manifest" {
			return nil, bad("the first record must be the manifest")
		}
		if head.Type == "end" {
			var e end
			if err := json.Unmarshal(b, &e); err != nil {
				return nil, bad("not a valid end record")
			}
			if e.SHA256 != hex.EncodeToString(sum.Sum(nil)) {
				return nil, bad("checksum mismatch: the archive was changed or damaged")
			}
			if e.Counts != got {
				return nil, bad("the counts do not match the records")
			}
			if _, err := readLine(r); err != io.EOF {
				return nil, &Error{Line: line + 1, Reason: "data after the end record"}
			}
			res.Restored = got
			res.Restored.Usage = 0
			res.SkippedUsage = got.Usage
			return res, nil
		}
		sum.Write(b)
		sum.Write([]byte{'\n'})
		switch head.Type {
		case "manifest":
			if line != 1 {
				return nil, bad("a second manifest")
			}
			var m Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, bad("not a valid manifest")
			}
			if m.Format != Format {
				return nil, bad("format %q is not %q", m.Format, Format)
			}
			if m.Version != Version {
				return nil, bad("format version %d is not supported (this build reads version %d)", m.Version, Version)
			}
			res.Manifest = m
			if err := check(m); err != nil {
				return nil, err
			}
		case "text_config":
			var v textConfig
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, bad("not a valid text_config record")
			}
			if _, err := tx.Exec(ctx, `insert into text_configs (config) values ($1::regconfig) on conflict do nothing`, v.Config); err != nil {
				return nil, dbErr(err)
			}
			got.TextConfigs++
		case "document":
			var v document
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, bad("not a valid document record")
			}
			if len(v.Metadata) == 0 {
				v.Metadata = json.RawMessage("{}")
			}
			if _, err := tx.Exec(ctx, `insert into documents (id, title, source, content_hash, metadata, bytes, chunk_count,
				content, text_config, status, created_at, updated_at)
				values ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9::regconfig, $10, $11, $12)`,
				id(v.ID), v.Title, v.Source, v.ContentHash, string(v.Metadata), v.Bytes, v.ChunkCount, v.Content,
				v.TextConfig, v.Status, v.CreatedAt, v.UpdatedAt); err != nil {
				return nil, dbErr(err)
			}
			got.Documents++
		case "chunk":
			var v chunk
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, bad("not a valid chunk record")
			}
			var emb *string
			if len(v.Embedding) > 0 && string(v.Embedding) != "null" {
				s := string(v.Embedding)
				emb = &s
			}
			if _, err := tx.Exec(ctx, `insert into chunks (id, document_id, ordinal, content, tokens, title, text_config, embedding)
				values ($1, $2, $3, $4, $5, $6, $7::regconfig, $8::text::vector)`,
				id(v.ID), id(v.DocumentID), v.Ordinal, v.Content, v.Tokens, v.Title, v.TextConfig, emb); err != nil {
				return nil, dbErr(err)
			}
			got.Chunks++
		case "entity":
			var v entity
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, bad("not a valid entity record")
			}
			if _, err := tx.Exec(ctx, `insert into entities (id, name, norm_name, kind, summary, created_at)
				values ($1, $2, $3, $4, $5, $6)`, id(v.ID), v.Name, v.NormName, v.Kind, v.Summary, v.CreatedAt); err != nil {
				return nil, dbErr(err)
			}
			got.Entities++
		case "relation":
			var v relation
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, bad("not a valid relation record")
			}
			if _, err := tx.Exec(ctx, `insert into relations (id, source_id, target_id, relation, fact, chunk_id, document_id,
				valid_at, invalid_at, created_at, expired_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				id(v.ID), id(v.SourceID), id(v.TargetID), v.Relation, v.Fact, optID(v.ChunkID), optID(v.DocumentID),
				v.ValidAt, v.InvalidAt, v.CreatedAt, v.ExpiredAt); err != nil {
				return nil, dbErr(err)
			}
			got.Relations++
		case "usage":
			got.Usage++
		default:
			return nil, bad("unknown record type %q", head.Type)
		}
	}
}

var errLong = errors.New("line too long")

// readLine reads one line without its newline, at most MaxLine bytes; io.EOF at the end (a last
// line without a newline is still a line).
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > MaxLine+1 {
			return nil, errLong
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		return buf[:len(buf)-1], nil
	}
}
