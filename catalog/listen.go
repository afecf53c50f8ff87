package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
)

// The channels the catalog's triggers notify (see migrations).
const (
	// ChannelTenants carries the id of a tenant that was created or changed.
	ChannelTenants = "ragplane_tenants"
	// ChannelOffloads carries the id of an offloaded tenant whose restore was asked for.
	ChannelOffloads = "ragplane_tenant_offloads"
	// ChannelWorkers carries the id of a worker that registered or was removed.
	ChannelWorkers = "ragplane_workers"
	// ChannelKeys carries an empty payload when the signing keys changed.
	ChannelKeys = "ragplane_keys"
)

// Reconnect delays of Listen: exponential with jitter between these bounds, back to the first
// once a connection has listened again.
const (
	listenRetryFirst = 250 * time.Millisecond
	listenRetryMax   = 10 * time.Second
)

// Listener says what Store.Listen listens to and whom it tells.
type Listener struct {
	// Channels to listen on: the Channel constants.
	Channels []string
	// Notify is called for each notification, in order, on Listen's goroutine; it should not
	// block for long, since notifications queue behind it.
	Notify func(channel, payload string)
	// Listening, if set, is called each time LISTEN has taken effect on a new connection.
	// Notifications sent while no connection listened are lost, so a caller that must see every
	// change re-reads what it watches here.
	Listening func()
	// Interrupted, if set, is called when a connection fails, with the error and the wait before
	// the next one (for logging).
	Interrupted func(err error, retryIn time.Duration)
}

// Listen listens for catalog notifications on a dedicated connection until ctx ends, reconnecting
// with exponential backoff when the connection fails. It returns nil when ctx ends; it returns an
// error only when l cannot work at all (no channels or no Notify).
func (s *Store) Listen(ctx context.Context, l Listener) error {
	if len(l.Channels) == 0 || l.Notify == nil {
		return errors.New("catalog: listen: channels and Notify are required")
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = listenRetryFirst, listenRetryMax
	for {
		listened, err := s.listenOnce(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			b.Reset()
		}
		wait := b.NextBackOff()
		if l.Interrupted != nil {
			l.Interrupted(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// listenOnce holds one connection, LISTENs on l.Channels and passes notifications to l.Notify until
// the connection or ctx fails. listened reports whether LISTEN took effect.
func (s *Store) listenOnce(ctx context.Context, l Listener) (listened bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("catalog: listen: connect: %w", err)
	}
	// A listening session must not go back to the pool: close it, then release the husk.
	defer func() {
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	for _, ch := range l.Channels {
		if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, fmt.Errorf("catalog: listen on %s: %w", ch, err)
		}
	}
	if l.Listening != nil {
		l.Listening()
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("catalog: wait for notification: %w", err)
		}
		l.Notify(n.Channel, n.Payload)
	}
}
