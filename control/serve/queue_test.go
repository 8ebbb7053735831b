package serve

import (
	"context"
	"testing"
	"time"
)

func TestQueueDeduplicates(t *testing.T) {
	q := newQueue()
	for _, id := range []string{"a", "b", "a", "c", "b", "a"} {
		q.add(id)
	}
	if q.len() != 3 {
		t.Fatalf("len = %d, want 3", q.len())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var got []string
	for range 3 {
		id, ok := q.next(ctx)
		if !ok {
			t.Fatal("next ended early")
		}
		got = append(got, id)
	}
	if got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("order = %v, want [a b c]", got)
	}
	// Added again while "being reconciled": it comes back.
	q.add("a")
	if id, _ := q.next(ctx); id != "a" {
		t.Fatalf("next = %q, want a", id)
	}
	cancel()
	if _, ok := q.next(ctx); ok {
		t.Fatal("next on an empty queue with a done context returned an ID")
	}
}

func TestQueueAddNeverBlocks(t *testing.T) {
	q := newQueue()
	done := make(chan struct{})
	go func() {
		for i := range 100000 {
			q.add(string(rune('a' + i%26)))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("add blocked with nobody reading")
	}
	if q.len() != 26 {
		t.Fatalf("len = %d, want 26", q.len())
	}
}
