package serve

import (
	"context"
	"sync"
)

// queue is a de-duplicating FIFO of container IDs. add never blocks (the
// Docker event reader must never wait: the engine drops slow subscribers);
// an ID already waiting is not added twice, and one added while it is being
// reconciled is reconciled again afterwards (level-triggered: each
// reconcile acts on a fresh inspect, not on the event that queued it).
type queue struct {
	mu      sync.Mutex
	order   []string
	pending map[string]bool
	wake    chan struct{}
}

func newQueue() *queue {
	return &queue{pending: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// add queues id unless it is already waiting.
func (q *queue) add(id string) {
	q.mu.Lock()
	if !q.pending[id] {
		q.pending[id] = true
		q.order = append(q.order, id)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next waits for an ID; ok is false when ctx ends.
func (q *queue) next(ctx context.Context) (id string, ok bool) {
	for {
		q.mu.Lock()
		if len(q.order) > 0 {
			id = q.order[0]
			q.order = q.order[1:]
			delete(q.pending, id)
			q.mu.Unlock()
			return id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.wake:
		}
	}
}

// len is the number of waiting IDs.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}
