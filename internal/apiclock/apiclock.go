// Package apiclock estimates the Kubernetes API server's clock from the Date header of its
// answers, so that ages the API server recorded (such as the time of a refresh claim) are judged
// by the same clock whatever the skew between the managers' nodes.
package apiclock

import (
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Clock is the API server's clock as last seen: the local clock plus the offset measured from the
// latest answer. Until an answer was seen, it is the local clock. Safe for concurrent use.
type Clock struct {
	local clock.PassiveClock

	mu     sync.Mutex
	offset time.Duration
}

var _ clock.PassiveClock = (*Clock)(nil)

// New returns a Clock over local.
func New(local clock.PassiveClock) *Clock {
	return &Clock{local: local}
}

// Now returns the API server's time, estimated.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local.Now().Add(c.offset)
}

// Since returns the time elapsed since t by the API server's clock.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Observe records the Date header of an answer received at localAt. The header has a resolution
// of one second, so the server's time is taken as the middle of that second.
func (c *Clock) Observe(date string, localAt time.Time) {
	serverAt, err := http.ParseTime(date)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = serverAt.Add(500 * time.Millisecond).Sub(localAt)
}

// Wrap returns a RoundTripper that observes every answer of next, for rest.Config.Wrap.
func (c *Clock) Wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper{clock: c, next: next}
}

// roundTripper feeds the Date header of every answer to a Clock.
type roundTripper struct {
	clock *Clock
	next  http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if err == nil {
		if date := resp.Header.Get("Date"); date != "" {
			rt.clock.Observe(date, rt.clock.local.Now())
		}
	}
	return resp, err
}
