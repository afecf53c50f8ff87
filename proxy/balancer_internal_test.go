package proxy

import (
	"testing"
	"time"
)

// A worker back from an ejection is ejected again by its first failure; a success ends its
// probation, and then it takes EjectAfter failures again.
func TestBalancerProbation(t *testing.T) {
	b := newBalancer(3, time.Hour)
	addrs := []string{"hung:1"}
	fail := func() {
		t.Helper()
		_, done, err := b.pick(addrs, "")
		if err != nil {
			t.Fatal(err)
		}
		done(true)
	}
	ejectedAfter := func(what string, failures int) {
		t.Helper()
		for i := 1; i <= failures; i++ {
			if b.ejected(addrs) != 0 {
				t.Fatalf("%s: ejected after %d failures, want %d", what, i-1, failures)
			}
			fail()
		}
		if b.ejected(addrs) != 1 {
			t.Fatalf("%s: not ejected after %d failures", what, failures)
		}
		b.stats["hung:1"].ejectedUntil = time.Now().Add(-time.Second) // the ejection is over
	}
	ejectedAfter("first", 3)
	ejectedAfter("on probation", 1)
	_, done, _ := b.pick(addrs, "")
	done(false)
	ejectedAfter("after a success", 3)
}
