package neo4j_test

import (
	"context"
	"net"
	"testing"
	"time"

	neo4jdriver "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/graph/graphtest"
	"github.com/ragplane/ragplane/dataplane/graph/neo4j"
)

// These run under make test, with no Neo4j: what DeleteGroup does against a real server is in
// neo4j_integration_test.go (build tag neo4j).

// A Neo4j that cannot be reached is EUNAVAILABLE, which the control plane's reconciler retries,
// never a deletion that reports nothing removed. Both ways a server can be unreachable: nothing
// listens, and something accepts and hangs up before the Bolt handshake.
func TestDeleteGroupUnreachableIsUnavailable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hangup.Close() })
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for name, addr := range map[string]string{"nothing listens": closedAddr, "hangs up": hangup.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			driver, err := neo4jdriver.NewDriverWithContext("bolt://"+addr, neo4jdriver.NoAuth(), func(c *config.Config) {
				c.MaxTransactionRetryTime = 200 * time.Millisecond
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { driver.Close(context.Background()) })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			nodes, rels, err := neo4j.New(driver, "").DeleteGroup(ctx, "acme")
			graphtest.MustCode(t, err, ragplane.EUNAVAILABLE)
			if nodes != 0 || rels != 0 {
				t.Fatalf("removed %d nodes and %d relationships from a server that is not there", nodes, rels)
			}
			if ctx.Err() != nil {
				t.Fatal("DeleteGroup gave up only when the test's deadline ended, not when the driver's retries did")
			}
		})
	}
}

// A group is a tenant: without one, DeleteGroup refuses before it connects (an empty group_id
// would match nothing today, but must never be asked for).
func TestDeleteGroupNeedsATenant(t *testing.T) {
	driver, err := neo4jdriver.NewDriverWithContext("bolt://127.0.0.1:1", neo4jdriver.NoAuth())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { driver.Close(context.Background()) })
	_, _, err = neo4j.New(driver, "").DeleteGroup(context.Background(), "")
	graphtest.MustCode(t, err, ragplane.EINVALID)
}
