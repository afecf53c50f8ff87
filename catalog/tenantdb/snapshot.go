package tenantdb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A snapshot is every row one tenant has in a database, byte for byte: the same ids, idempotency
// keys and cached answers, so that a tenant's database can be dropped (offloaded) and restored
// as it was. It is internal to one installation, not a portable export (catalog/archive is that):
// rows travel in PostgreSQL's binary COPY format, which is tied to the server's types. The
// stream is
//
//  1. a header: one line of JSON, {"format": "ragplane-tenant-snapshot", "version": 1,
//     "tenant_id", "schema_version", "tables": [{"name", "columns", "types", "reg_oids"}]},
//     the tables in the order they follow (parents first: the reverse of TenantTables), each
//     with its stored columns (not generated ones) and their types as format_type gives them;
//  2. per table, the output of `copy (select <columns> from <table> where tenant_id = ...) to
//     stdout (format binary)` cut into frames: a 4-byte big-endian length, then that many bytes.
//     A frame of length 0 ends the table. Dump writes frames of at most 1 MiB and Load refuses
//     any over 64 MiB, so neither holds more than a frame (Load holds none: it streams them);
//  3. a trailer: one line of JSON, {"rows": {table: count}, "sha256"}, the row counts COPY
//     reported and the hex SHA-256 of every byte before the trailer. Nothing follows it.
//
// Values of reg* types (chunks.text_config is a regconfig) travel as OIDs in binary COPY. Those
// of the built-in text search configurations are the same in every database of a cluster (each
// is a copy of template1), but not necessarily in another cluster: the header records the OID
// each name the tenant's rows use had in the source (reg_oids), and Load refuses a target where
// a name has another OID rather than load rows that would name the wrong configuration.

const (
	snapshotFormat  = "ragplane-tenant-snapshot"
	snapshotVersion = 1
	// dumpFrame is the largest frame Dump writes; maxFrame the largest Load accepts (a larger one
	// is damage, not data).
	dumpFrame = 1 << 20
	maxFrame  = 64 << 20
	// maxLine bounds the header and the trailer.
	maxLine = 1 << 20
)

// ErrSnapshotDamaged is returned (wrapped) by Load when the snapshot is not what Dump wrote:
// truncated, altered, with bytes after its trailer, or not a snapshot at all.
var ErrSnapshotDamaged = errors.New("tenantdb: the snapshot is damaged")

// ErrSnapshotRefused is returned (wrapped) by Load when an intact snapshot does not fit the
// target: another tenant's, another schema version, other columns, or a target that already
// holds rows of the tenant.
var ErrSnapshotRefused = errors.New("tenantdb: the snapshot does not fit the target")

// SnapshotInfo describes a snapshot: whose, at which schema version, its rows per table, its
// size and checksum.
type SnapshotInfo struct {
	// Tenant is the tenant whose rows the snapshot holds.
	Tenant string `json:"tenant_id"`
	// SchemaVersion is the schema version of the database it was taken from.
	SchemaVersion int `json:"schema_version"`
	// Rows is the number of rows per table, as COPY counted them.
	Rows map[string]int64 `json:"rows"`
	// Bytes is the length of the whole snapshot stream.
	Bytes int64 `json:"bytes"`
	// SHA256 is the hex SHA-256 of the whole stream, trailer included.
	SHA256 string `json:"sha256"`
}

// snapshotHeader is the first line of a snapshot.
type snapshotHeader struct {
	Format        string          `json:"format"`
	Version       int             `json:"version"`
	Tenant        string          `json:"tenant_id"`
	SchemaVersion int             `json:"schema_version"`
	Tables        []snapshotTable `json:"tables"`
}

// snapshotTable is a table in the header: its columns unquoted, their types, and the OIDs of the
// names its reg* columns hold (column -> name -> OID).
type snapshotTable struct {
	Name    string                       `json:"name"`
	Columns []string                     `json:"columns"`
	Types   []string                     `json:"types"`
	RegOIDs map[string]map[string]uint32 `json:"reg_oids,omitempty"`
}

// snapshotTrailer is the last line of a snapshot.
type snapshotTrailer struct {
	Rows   map[string]int64 `json:"rows"`
	SHA256 string           `json:"sha256"`
}

// unquote undoes pgx.Identifier.Sanitize of a one-part identifier.
func unquote(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`), `""`, `"`)
}

// parentsFirst is TenantTables in the order a snapshot holds them.
func parentsFirst() []string {
	out := slices.Clone(TenantTables)
	slices.Reverse(out)
	return out
}

// schemaVersion reads the schema version of the database of tx.
func schemaVersion(ctx context.Context, tx pgx.Tx) (int, error) {
	var v int
	if err := tx.QueryRow(ctx, `select version from `+VersionTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("tenantdb: schema version: %w", err)
	}
	return v, nil
}

// regOIDs reads, for each reg* column of t, the names the tenant's rows hold and their OIDs.
func regOIDs(ctx context.Context, tx pgx.Tx, t table, tenant string) (map[string]map[string]uint32, error) {
	var out map[string]map[string]uint32
	for i, c := range t.columns {
		if !strings.HasPrefix(t.types[i], "reg") {
			continue
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`select distinct %s::text, %s::oid::int8 from %s where tenant_id = $1 and %s is not null`,
			c, c, t.name, c), tenant)
		if err != nil {
			return nil, fmt.Errorf("tenantdb: %s.%s: %w", t.plain, unquote(c), err)
		}
		names := map[string]uint32{}
		var name string
		var oid int64
		if _, err := pgx.ForEachRow(rows, []any{&name, &oid}, func() error {
			names[name] = uint32(oid)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("tenantdb: %s.%s: %w", t.plain, unquote(c), err)
		}
		if out == nil {
			out = map[string]map[string]uint32{}
		}
		out[unquote(c)] = names
	}
	return out, nil
}

// snapshotWriter writes a snapshot, hashing what it writes: prefix hashes everything before the
// trailer, whole everything.
type snapshotWriter struct {
	w       *bufio.Writer
	prefix  hash.Hash
	whole   hash.Hash
	n       int64
	trailer bool
}

func (s *snapshotWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if !s.trailer {
		s.prefix.Write(p[:n])
	}
	s.whole.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// frame writes p as one frame.
func (s *snapshotWriter) frame(p []byte) error {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(p)))
	if _, err := s.Write(l[:]); err != nil {
		return err
	}
	_, err := s.Write(p)
	return err
}

// frameWriter cuts what COPY TO writes into frames of at most dumpFrame bytes.
type frameWriter struct{ s *snapshotWriter }

func (f frameWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += dumpFrame {
		if err := f.s.frame(p[off:min(off+dumpFrame, len(p))]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// Dump writes every row of tenant in the database of tx (all TenantTables; not its seal in
// ragplane_tenant_seals) to w as a snapshot (see the format above). tx must be its owner's (a
// superuser's, which row level security does not bind) and see one state of the tenant's rows:
// a REPEATABLE READ transaction, or one that holds the tenant's Fence. Nothing is buffered whole:
// memory stays bounded by a frame. An error writing to w ends tx's connection (pgx closes a
// connection whose COPY TO it cannot finish).
func Dump(ctx context.Context, tx pgx.Tx, tenant string, w io.Writer) (SnapshotInfo, error) {
	info := SnapshotInfo{Tenant: tenant, Rows: map[string]int64{}}
	if tenant == "" {
		return info, errors.New("tenantdb: dump: no tenant")
	}
	var err error
	if info.SchemaVersion, err = schemaVersion(ctx, tx); err != nil {
		return info, err
	}
	// COPY takes no parameters: its query reads the tenant from the transaction's setting.
	if _, err := tx.Exec(ctx, `select set_config('ragplane.tenant_id', $1, true)`, tenant); err != nil {
		return info, fmt.Errorf("tenantdb: dump: %w", err)
	}
	head := snapshotHeader{Format: snapshotFormat, Version: snapshotVersion, Tenant: tenant, SchemaVersion: info.SchemaVersion}
	var tables []table
	for _, name := range parentsFirst() {
		t, err := describe(ctx, tx, name)
		if err != nil {
			return info, fmt.Errorf("tenantdb: dump: describe %s: %w", name, err)
		}
		st := snapshotTable{Name: name, Types: t.types}
		for _, c := range t.columns {
			st.Columns = append(st.Columns, unquote(c))
		}
		if st.RegOIDs, err = regOIDs(ctx, tx, t, tenant); err != nil {
			return info, err
		}
		head.Tables = append(head.Tables, st)
		tables = append(tables, t)
	}
	line, err := json.Marshal(head)
	if err != nil {
		return info, err
	}
	sw := &snapshotWriter{w: bufio.NewWriterSize(w, 64<<10), prefix: sha256.New(), whole: sha256.New()}
	if _, err := sw.Write(append(line, '\n')); err != nil {
		return info, fmt.Errorf("tenantdb: dump: %w", err)
	}
	for _, t := range tables {
		tag, err := tx.Conn().PgConn().CopyTo(ctx, frameWriter{sw}, fmt.Sprintf(
			`copy (select %s from %s where tenant_id = current_setting('ragplane.tenant_id')) to stdout (format binary)`,
			strings.Join(t.columns, ", "), t.name))
		if err != nil {
			return info, fmt.Errorf("tenantdb: dump %s: %w", t.plain, err)
		}
		if err := sw.frame(nil); err != nil {
			return info, fmt.Errorf("tenantdb: dump %s: %w", t.plain, err)
		}
		info.Rows[t.plain] = tag.RowsAffected()
	}
	line, err = json.Marshal(snapshotTrailer{Rows: info.Rows, SHA256: hex.EncodeToString(sw.prefix.Sum(nil))})
	if err != nil {
		return info, err
	}
	sw.trailer = true
	if _, err := sw.Write(append(line, '\n')); err != nil {
		return info, fmt.Errorf("tenantdb: dump: %w", err)
	}
	if err := sw.w.Flush(); err != nil {
		return info, fmt.Errorf("tenantdb: dump: %w", err)
	}
	info.Bytes, info.SHA256 = sw.n, hex.EncodeToString(sw.whole.Sum(nil))
	return info, nil
}

// snapshotReader reads a snapshot, hashing what it consumes (not what its buffer reads ahead):
// prefix everything before the trailer, whole everything.
type snapshotReader struct {
	r       *bufio.Reader
	prefix  hash.Hash
	whole   hash.Hash
	n       int64
	trailer bool
}

func (s *snapshotReader) consumed(p []byte) {
	if !s.trailer {
		s.prefix.Write(p)
	}
	s.whole.Write(p)
	s.n += int64(len(p))
}

func (s *snapshotReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.consumed(p[:n])
	return n, err
}

// damaged wraps err as ErrSnapshotDamaged with what was being read.
func damaged(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrSnapshotDamaged, what, err)
}

// readError is an error reading what: the snapshot's end is damage (it is cut short), any other
// error the reader's own (a transient failure of its storage, say), returned as it is.
func readError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged(what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("tenantdb: reading the snapshot's %s: %w", what, err)
}

// line reads a line of JSON of at most maxLine bytes into v.
func (s *snapshotReader) line(what string, v any) error {
	var buf []byte
	for {
		part, err := s.r.ReadSlice('\n')
		s.consumed(part)
		buf = append(buf, part...)
		if len(buf) > maxLine {
			return damaged(what, fmt.Errorf("longer than %d bytes", maxLine))
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return readError(what, err)
		}
	}
	d := json.NewDecoder(bytes.NewReader(buf))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return damaged(what, err)
	}
	if err := d.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return damaged(what, errors.New("more than one JSON value"))
	}
	return nil
}

// frames copies the frames of one table to w until the frame that ends it. An error reading the
// snapshot is ErrSnapshotDamaged; an error writing to w is returned as it is.
func (s *snapshotReader) frames(w io.Writer, buf []byte) error {
	var l [4]byte
	for {
		if _, err := io.ReadFull(s, l[:]); err != nil {
			return readError("frame length", err)
		}
		n := int64(binary.BigEndian.Uint32(l[:]))
		if n == 0 {
			return nil
		}
		if n > maxFrame {
			return damaged("frame", fmt.Errorf("%d bytes, more than %d", n, maxFrame))
		}
		for n > 0 {
			m, err := s.Read(buf[:min(n, int64(len(buf)))])
			if m > 0 {
				if _, werr := w.Write(buf[:m]); werr != nil {
					return werr
				}
				n -= int64(m)
			}
			if err != nil && n > 0 {
				return readError("frame", err)
			}
		}
	}
}

// Load writes a snapshot from r into the database of tx, which must be read-write and its
// owner's (a superuser's, or a role that row level security does not bind: COPY FROM refuses
// tables whose policies bind the role). The target must hold no row of the tenant in any
// TenantTables table and be at the snapshot's schema version, with the same stored columns; the
// snapshot must be tenant's (ErrSnapshotRefused otherwise). Tables are loaded parents first,
// each streamed from its frames into COPY FROM. Load then verifies the trailer: the SHA-256 of
// every byte before it, the row counts per table equal to what COPY loaded, and nothing after
// it (ErrSnapshotDamaged on any mismatch, truncation or damage). On any error the caller rolls tx
// back; it commits only on nil.
func Load(ctx context.Context, tx pgx.Tx, tenant string, r io.Reader) (SnapshotInfo, error) {
	info := SnapshotInfo{Tenant: tenant, Rows: map[string]int64{}}
	sr := &snapshotReader{r: bufio.NewReaderSize(r, 64<<10), prefix: sha256.New(), whole: sha256.New()}
	if tenant == "" {
		return info, fmt.Errorf("%w: no tenant", ErrSnapshotRefused)
	}
	var head snapshotHeader
	if err := sr.line("header", &head); err != nil {
		return info, err
	}
	if head.Format != snapshotFormat {
		return info, fmt.Errorf("%w: not a tenant snapshot (format %q)", ErrSnapshotDamaged, head.Format)
	}
	if head.Version != snapshotVersion {
		return info, fmt.Errorf("%w: snapshot format version %d, this build reads %d", ErrSnapshotRefused, head.Version, snapshotVersion)
	}
	if head.Tenant != tenant {
		return info, fmt.Errorf("%w: the snapshot is tenant %q's, not %q's", ErrSnapshotRefused, head.Tenant, tenant)
	}
	info.SchemaVersion = head.SchemaVersion
	v, err := schemaVersion(ctx, tx)
	if err != nil {
		return info, err
	}
	if v != head.SchemaVersion {
		return info, fmt.Errorf("%w: the snapshot is at schema version %d, the target at %d", ErrSnapshotRefused, head.SchemaVersion, v)
	}
	names := make([]string, 0, len(head.Tables))
	for _, st := range head.Tables {
		names = append(names, st.Name)
	}
	if want := parentsFirst(); !slices.Equal(names, want) {
		return info, fmt.Errorf("%w: the snapshot holds tables %v, the target %v", ErrSnapshotRefused, names, want)
	}
	if _, err := tx.Exec(ctx, `select set_config('ragplane.tenant_id', $1, true)`, tenant); err != nil {
		return info, fmt.Errorf("tenantdb: load: %w", err)
	}
	tables := make([]table, 0, len(head.Tables))
	for _, st := range head.Tables {
		t, err := describe(ctx, tx, st.Name)
		if err != nil {
			return info, fmt.Errorf("tenantdb: load: describe %s: %w", st.Name, err)
		}
		// The same columns by name and type, in any order: a database whose columns were added
		// and dropped over time (a re-embedding swaps its vector column) orders them otherwise than
		// a new one. The rows are copied in the snapshot's order.
		cols := make([]string, 0, len(t.columns))
		target := make(map[string]string, len(t.columns))
		for i, c := range t.columns {
			cols = append(cols, unquote(c))
			target[unquote(c)] = t.types[i]
		}
		same := len(st.Columns) == len(cols) && len(st.Types) == len(st.Columns)
		for i := 0; same && i < len(st.Columns); i++ {
			typ, ok := target[st.Columns[i]]
			same = ok && typ == st.Types[i]
		}
		if !same {
			return info, fmt.Errorf("%w: table %s has columns %v %v in the snapshot, %v %v in the target",
				ErrSnapshotRefused, st.Name, st.Columns, st.Types, cols, t.types)
		}
		t.columns, t.types = make([]string, len(st.Columns)), slices.Clone(st.Types)
		for i, c := range st.Columns {
			t.columns[i] = pgx.Identifier{c}.Sanitize()
		}
		if err := checkRegOIDs(ctx, tx, t, st.RegOIDs); err != nil {
			return info, err
		}
		var exists bool
		if err := tx.QueryRow(ctx, fmt.Sprintf(`select exists (select from %s where tenant_id = $1)`, t.name), tenant).Scan(&exists); err != nil {
			return info, fmt.Errorf("tenantdb: load: %s: %w", st.Name, err)
		}
		if exists {
			return info, fmt.Errorf("%w: the target already holds rows of tenant %q in %s", ErrSnapshotRefused, tenant, st.Name)
		}
		tables = append(tables, t)
	}
	buf := make([]byte, 64<<10)
	for _, t := range tables {
		n, err := loadTable(ctx, tx, t, sr, buf)
		if err != nil {
			return info, err
		}
		info.Rows[t.plain] = n
	}
	sum := hex.EncodeToString(sr.prefix.Sum(nil))
	sr.trailer = true
	var tail snapshotTrailer
	if err := sr.line("trailer", &tail); err != nil {
		return info, err
	}
	if _, err := sr.r.ReadByte(); err == nil {
		return info, fmt.Errorf("%w: bytes after the trailer", ErrSnapshotDamaged)
	} else if !errors.Is(err, io.EOF) {
		return info, fmt.Errorf("tenantdb: load: %w", err)
	}
	if tail.SHA256 != sum {
		return info, fmt.Errorf("%w: checksum %s, the trailer says %s", ErrSnapshotDamaged, sum, tail.SHA256)
	}
	if !maps.Equal(tail.Rows, info.Rows) {
		return info, fmt.Errorf("%w: loaded rows %v, the trailer says %v", ErrSnapshotDamaged, info.Rows, tail.Rows)
	}
	// The target held none of the tenant's rows: it must now hold exactly those loaded, which
	// catches a snapshot whose rows name another tenant.
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, fmt.Sprintf(`select count(*) from %s where tenant_id = $1`, t.name), tenant).Scan(&n); err != nil {
			return info, fmt.Errorf("tenantdb: load: %s: %w", t.plain, err)
		}
		if n != info.Rows[t.plain] {
			return info, fmt.Errorf("%w: %d rows loaded into %s, %d of them tenant %q's", ErrSnapshotDamaged, info.Rows[t.plain], t.plain, n, tenant)
		}
	}
	info.Bytes, info.SHA256 = sr.n, hex.EncodeToString(sr.whole.Sum(nil))
	return info, nil
}

// checkRegOIDs refuses a target where a name the snapshot's reg* values use has another OID
// than in the source (binary COPY carries the OID).
func checkRegOIDs(ctx context.Context, tx pgx.Tx, t table, oids map[string]map[string]uint32) error {
	for i, c := range t.columns {
		names, ok := oids[unquote(c)]
		if !ok || !strings.HasPrefix(t.types[i], "reg") {
			continue
		}
		for name, want := range names {
			var got int64
			// The type is format_type's name of a reg* type, read from the target's catalog.
			if err := tx.QueryRow(ctx, fmt.Sprintf(`select $1::text::%s::oid::int8`, t.types[i]), name).Scan(&got); err != nil {
				return fmt.Errorf("%w: %s.%s: %s %q: %w", ErrSnapshotRefused, t.plain, unquote(c), t.types[i], name, err)
			}
			if uint32(got) != want {
				return fmt.Errorf("%w: %s.%s: %s %q is OID %d in the snapshot, %d in the target",
					ErrSnapshotRefused, t.plain, unquote(c), t.types[i], name, want, got)
			}
		}
	}
	return nil
}

// errCopyEnded is what writing a table's frames gets once its COPY has ended.
var errCopyEnded = errors.New("tenantdb: COPY ended before the table's last frame")

// loadTable streams one table's frames into COPY FROM and returns how many rows it loaded.
func loadTable(ctx context.Context, tx pgx.Tx, t table, sr *snapshotReader, buf []byte) (int64, error) {
	type result struct {
		n   int64
		err error
	}
	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() {
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, pr, fmt.Sprintf(`copy %s (%s) from stdin (format binary)`,
			t.name, strings.Join(t.columns, ", ")))
		// Unblocks frames if COPY ended (failed) before the table's last frame.
		pr.CloseWithError(errors.Join(errCopyEnded, err))
		done <- result{tag.RowsAffected(), err}
	}()
	ferr := sr.frames(pw, buf)
	pw.CloseWithError(ferr) // nil: EOF, the end of the table's data
	res := <-done
	switch {
	case ferr != nil && !errors.Is(ferr, errCopyEnded): // damage, or the reader's error
		return 0, fmt.Errorf("tenantdb: load %s: %w", t.plain, ferr)
	case res.err != nil:
		// A data exception (class 22: bad binary format or value) is damage to the rows.
		var pgErr *pgconn.PgError
		if errors.As(res.err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
			return 0, fmt.Errorf("tenantdb: load %s: %w: %w", t.plain, ErrSnapshotDamaged, res.err)
		}
		return 0, fmt.Errorf("tenantdb: load %s: %w", t.plain, res.err)
	case ferr != nil:
		return 0, fmt.Errorf("tenantdb: load %s: %w", t.plain, ferr)
	}
	return res.n, nil
}

// DeferIndexes drops the secondary indexes (neither primary keys nor unique: no constraint
// depends on them) of every TenantTables table in the database of tx, and returns a function that
// builds them again from their definitions. Loading many rows in between and then building each
// index once is several times faster than maintaining an HNSW and a GIN index row by row. It is
// for a database nobody else uses yet (a restore's new one): the drops lock the tables until tx
// ends, and until rebuild has run the tables have no secondary index.
func DeferIndexes(ctx context.Context, tx pgx.Tx) (rebuild func() error, err error) {
	rows, err := tx.Query(ctx, `select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) from pg_index i
		where i.indrelid = any($1::regclass[]) and not i.indisprimary and not i.indisunique
		  and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
		order by i.indexrelid`, TenantTables)
	if err != nil {
		return nil, err
	}
	type index struct{ name, def string }
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		err := r.Scan(&ix.name, &ix.def)
		return ix, err
	})
	if err != nil {
		return nil, err
	}
	for _, ix := range indexes {
		// The name comes from regclass's output: quoted as needed, schema-qualified when not on the path.
		if _, err := tx.Exec(ctx, `drop index `+ix.name); err != nil {
			return nil, fmt.Errorf("tenantdb: drop index %s: %w", ix.name, err)
		}
	}
	return func() error {
		for _, ix := range indexes {
			if _, err := tx.Exec(ctx, ix.def); err != nil {
				return fmt.Errorf("tenantdb: build index %s: %w", ix.name, err)
			}
		}
		return nil
	}, nil
}
