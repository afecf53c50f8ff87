package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

type notification struct{ channel, payload string }

func TestListen(t *testing.T) {
	s, dbURL := catalogtest.MustOpen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notes := make(chan notification, 16)
	listening := make(chan struct{}, 4)
	interrupted := make(chan error, 4)
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, catalog.Listener{
			Channels:    []string{catalog.ChannelTenants, catalog.ChannelKeys},
			Notify:      func(ch, p string) { notes <- notification{ch, p} },
			Listening:   func() { listening <- struct{}{} },
			Interrupted: func(err error, _ time.Duration) { interrupted <- err },
		})
	}()
	wait := func(what string, c <-chan struct{}) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	expectTenant := func(id string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case n := <-notes:
				if n.channel == catalog.ChannelTenants && n.payload == id {
					return
				}
			case <-deadline:
				t.Fatalf("no notification for tenant %s", id)
			}
		}
	}

	wait("LISTEN", listening)
	MustCreateTenant(t, s, newTenant("listen_a"))
	expectTenant("listen_a")

	// A dropped connection is reported, replaced, and announced again with Listening.
	conn := MustConnect(t, dbURL)
	if _, err := conn.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
		where datname = current_database() and pid <> pg_backend_pid() and query ilike 'listen %'`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-interrupted:
		if err == nil {
			t.Fatal("Interrupted called with a nil error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the dropped connection was not reported")
	}
	wait("LISTEN after reconnect", listening)
	MustCreateTenant(t, s, newTenant("listen_b"))
	expectTenant("listen_b")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen after ctx ended = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Listen did not return when ctx ended")
	}
}

func TestListenRequiresChannelsAndNotify(t *testing.T) {
	s, _ := catalogtest.MustOpen(t)
	for _, l := range []catalog.Listener{{Notify: func(string, string) {}}, {Channels: []string{catalog.ChannelTenants}}} {
		if err := s.Listen(context.Background(), l); err == nil {
			t.Fatalf("Listen(%+v) = nil, want an error", l)
		}
	}
}
