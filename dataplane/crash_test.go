package dataplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// TestKilledMidIngestLeavesNothingHalfWritten kills a worker process (SIGKILL) in the middle of a
// batch's write transaction (its documents and chunks written, its idempotency record not yet),
// then checks that no document or chunk of the batch exists, and that the retry
// with the same Idempotency-Key stores the batch exactly once.
func TestKilledMidIngestLeavesNothingHalfWritten(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "enterprise", nil)
	addr := e2etest.FreeAddr(t)
	worker := e2etest.StartProcess(t, "dataplane", addr, st.WorkerEnv(addr)...)
	remote := st.Tenant("acme_corp")
	remote.Base = "http://" + addr

	var docs []map[string]any
	for i := 0; i < 12; i++ { // a few documents: the kill point is a lock, not the batch's size
		var b strings.Builder
		for j := 0; j < 60; j++ {
			fmt.Fprintf(&b, "Document %d paragraph %d says the control %d must be reviewed by team %d. ", i, j, i*j, j%7)
		}
		docs = append(docs, map[string]any{"title": fmt.Sprintf("doc %d", i), "content": b.String()})
	}
	batch := map[string]any{"documents": docs}
	payload, _ := json.Marshal(batch)
	req, _ := http.NewRequest("POST", remote.Base+"/v1/documents/batch", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "big-batch")
	req.Header.Set(tenantctx.Header, st.Codec.Sign(tenantctx.Context{Identity: remote.ID, IssuedAt: time.Now()}, "POST", "/v1/documents/batch"))
	// The test holds a lock the batch's transaction needs last (its idempotency record): the worker
	// is killed once its transaction provably holds what it wrote and waits for that lock.
	ctx := context.Background()
	url, err := st.Store().TenantDatabaseURL(ctx, "acme_corp")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Row level security: the tenant's rows only, as the worker sees them.
	if _, err := conn.Exec(ctx, `select set_config('ragplane.tenant_id', 'acme_corp', false)`); err != nil {
		t.Fatal(err)
	}
	blocker, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	hold, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// SHARE lets the transaction read idempotency_keys but not insert into it.
	if _, err := hold.Exec(ctx, `lock table idempotency_keys in share mode`); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0 // the worker died under the request, as intended
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var waiting bool
		// A backend that has written the batch's documents and waits for the idempotency lock.
		if err := conn.QueryRow(ctx, `select exists (
			select 1 from pg_locks w join pg_class wc on wc.oid = w.relation
			join pg_locks d on d.pid = w.pid join pg_class dc on dc.oid = d.relation
			where wc.relname = 'idempotency_keys' and not w.granted
			  and dc.relname = 'documents' and d.mode = 'RowExclusiveLock' and d.granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case status := <-done:
			t.Fatalf("the batch answered %d before its transaction was caught mid-way", status)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch's transaction never reached its idempotency record")
		}
		time.Sleep(10 * time.Millisecond)
	}
	worker.Kill()
	if status := <-done; status != 0 {
		t.Fatalf("the batch answered %d; it must die mid-request", status)
	}
	// The dead worker's backend gets the lock, finds its client gone and rolls back.
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	count := func() (int, int, int) {
		var d, c, want int
		conn.QueryRow(ctx, `select (select count(*) from documents), (select count(*) from chunks),
			(select coalesce(sum(chunk_count), 0) from documents)`).Scan(&d, &c, &want)
		if c != want {
			t.Fatalf("%d chunks stored for documents that claim %d", c, want)
		}
		return d, c, want
	}
	if d, c, _ := count(); d != 0 || c != 0 {
		t.Fatalf("after the kill: %d documents, %d chunks; want none", d, c)
	}
	// The client retries with the same key, twice: one batch is stored.
	local := st.Tenant("acme_corp")
	mustStatus(t, local.Do("POST", "/v1/documents/batch", batch, "Idempotency-Key", "big-batch"), http.StatusCreated)
	r := local.Do("POST", "/v1/documents/batch", batch, "Idempotency-Key", "big-batch")
	mustStatus(t, r, http.StatusCreated)
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the second retry was not a replay")
	}
	if d, _, _ := count(); d != len(docs) {
		t.Fatalf("%d documents after retries, want %d", d, len(docs))
	}
}
