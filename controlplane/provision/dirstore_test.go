package provision_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/ragplane/ragplane/controlplane/provision"
)

// DirStore keeps an archive under its name only once it is whole: a write that fails leaves
// nothing (no partial file, no temporary one), and names that could leave the directory are refused.
func TestDirStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := provision.DirStore{Dir: dir + "/archives"} // created on first use
	if err := s.Put(ctx, "acme-1.snapshot", func(w io.Writer) error {
		_, err := io.WriteString(w, "every row of acme")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, "acme-1.snapshot")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "every row of acme" {
		t.Fatalf("read back %q", b)
	}
	boom := errors.New("the database went away mid-dump")
	if err := s.Put(ctx, "acme-2.snapshot", func(w io.Writer) error {
		io.WriteString(w, "half of it")
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed write: %v, want it returned", err)
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "acme-1.snapshot" {
		t.Fatalf("store after a failed write: %v, want only acme-1.snapshot", entries)
	}
	for _, name := range []string{"../escape", "a/b", "", ".hidden", ".."} {
		if err := s.Put(ctx, name, func(io.Writer) error { return nil }); err == nil {
			t.Errorf("Put(%q) accepted", name)
		}
		if _, err := s.Open(ctx, name); err == nil {
			t.Errorf("Open(%q) accepted", name)
		}
	}
	if err := s.Remove(ctx, "acme-1.snapshot"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "acme-1.snapshot"); err != nil {
		t.Fatalf("removing a missing archive: %v", err)
	}
	if _, err := s.Open(ctx, "acme-1.snapshot"); err == nil {
		t.Fatal("removed archive still opens")
	}
}
