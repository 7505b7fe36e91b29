package controller

import (
	"hash/fnv"
	"sync"
	"time"
)

// namespaceShare keeps one namespace from occupying every worker: a namespace may have at most
// limit reconciles in flight, and a reconcile over that is requeued at once instead of waiting, so
// that the other namespaces' connections are reconciled by the workers left. A tenant that creates
// ten thousand connections at once slows only its own.
type namespaceShare struct {
	mu       sync.Mutex
	inFlight map[string]int
}

// fairnessRetry is how soon a reconcile turned away by namespaceShare is tried again, plus a
// jitter of up to as much again.
const fairnessRetry = 200 * time.Millisecond

// shareOf is the most workers one namespace may hold: three quarters of them, at least one.
func shareOf(workers int) int {
	return max(1, workers*3/4)
}

// enter admits one more reconcile of namespace while it holds fewer than limit.
func (n *namespaceShare) enter(namespace string, limit int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inFlight == nil {
		n.inFlight = map[string]int{}
	}
	if n.inFlight[namespace] >= limit {
		return false
	}
	n.inFlight[namespace]++
	return true
}

// leave ends a reconcile that enter admitted.
func (n *namespaceShare) leave(namespace string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inFlight[namespace]--; n.inFlight[namespace] <= 0 {
		delete(n.inFlight, namespace)
	}
}

// fairnessDelay spreads the retries of turned-away reconciles by the connection's name.
func fairnessDelay(namespace, name string) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace + "/" + name))
	return fairnessRetry + time.Duration(h.Sum32()%uint32(fairnessRetry/time.Millisecond))*time.Millisecond
}
