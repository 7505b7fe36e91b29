package mautic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// Defaults of the per-host protection in Options.
const (
	// DefaultMaxConcurrentPerHost is how many requests may be in flight to one host:port at once.
	DefaultMaxConcurrentPerHost = 4
	// DefaultCircuitFailureThreshold is how many timeouts or connection failures in a row open a host's circuit.
	DefaultCircuitFailureThreshold = 5
	// DefaultCircuitCoolDown is how long an open circuit refuses requests before letting one trial through.
	DefaultCircuitCoolDown = 30 * time.Second
	// DefaultCircuitMaxCoolDown caps the cool-down, which doubles each time a trial request fails.
	DefaultCircuitMaxCoolDown = 5 * time.Minute
)

const (
	// hostIdleTTL is how long a host's entry is kept without use, at least.
	hostIdleTTL = 10 * time.Minute
	// hostSweepInterval is how often, at most, entries are checked for eviction (lazily, by acquire).
	hostSweepInterval = time.Minute
	// busyRetryAfter is the RetryAfter of a host whose requests in flight or circuit trial will
	// end at a time nobody knows in advance.
	busyRetryAfter = time.Second
)

// Reasons a HostBusyError gives.
const (
	// HostBusyInFlight means MaxConcurrentPerHost requests are in flight to the host.
	HostBusyInFlight = "too many requests in flight"
	// HostBusyRateLimited means the host's request rate limit is used up.
	HostBusyRateLimited = "rate limited"
	// HostBusyCircuitOpen means the host failed too often in a row and is left alone for a while.
	HostBusyCircuitOpen = "circuit open"
)

// HostBusyError reports a request that was not sent, at once and without waiting, because its
// host is busy: as many requests as allowed are in flight to it, its rate limit is used up, or its
// circuit is open after repeated timeouts and connection failures. Nothing was sent; it is
// transient: try again after RetryAfter.
type HostBusyError struct {
	// Host is the target, host:port in lower case.
	Host string
	// Reason is HostBusyInFlight, HostBusyRateLimited or HostBusyCircuitOpen.
	Reason string
	// RetryAfter is when to try again; always positive.
	RetryAfter time.Duration
}

// Error names the host, the reason and when to retry.
func (e *HostBusyError) Error() string {
	return fmt.Sprintf("not sending a request to Mautic at %s: %s; retry after %s", printable(e.Host), e.Reason, e.RetryAfter)
}

// IsHostBusy reports whether err is (or wraps) a *HostBusyError, and after how long to retry.
func IsHostBusy(err error) (time.Duration, bool) {
	var busy *HostBusyError
	if errors.As(err, &busy) {
		return busy.RetryAfter, true
	}
	return 0, false
}

// outcome is what a finished request tells about its host, for the circuit breaker.
type outcome int

const (
	// outcomeNeutral tells nothing: the caller gave up, the target was refused before sending.
	outcomeNeutral outcome = iota
	// outcomeSuccess is an answer of any kind: the host is reachable.
	outcomeSuccess
	// outcomeFailure is a timeout or a failure to connect or to keep the connection.
	outcomeFailure
)

// hostState is the protection state of one host:port.
type hostState struct {
	inFlight int
	limiter  *rate.Limiter // nil: no rate limit
	lastUsed time.Time

	failures  int           // consecutive timeouts and connection failures
	open      bool          // the circuit is open (half-open once openUntil has passed)
	openUntil time.Time     // end of the current cool-down
	coolDown  time.Duration // the current cool-down, doubled by each failed trial
	trial     bool          // the one trial request of a half-open circuit is in flight
}

// hostGuard limits, per host:port, the requests in flight and their rate, and keeps a circuit
// breaker, all without ever blocking: a call that cannot go now gets a *HostBusyError at once.
// Idle entries are evicted lazily. Safe for concurrent use.
type hostGuard struct {
	clock            clock.PassiveClock
	maxInFlight      int // <= 0: no limit
	rateLimit        rate.Limit
	burst            int
	failureThreshold int // <= 0: no circuit breaker
	coolDown         time.Duration
	maxCoolDown      time.Duration

	mu        sync.Mutex
	hosts     map[string]*hostState
	lastSweep time.Time
}

// newHostGuard returns the guard for opts, whose defaults are filled in.
func newHostGuard(opts Options) *hostGuard {
	limit := rate.Limit(opts.RequestsPerSecond)
	if opts.RequestsPerSecond < 0 {
		limit = rate.Inf
	}
	return &hostGuard{
		clock:            opts.Clock,
		maxInFlight:      opts.MaxConcurrentPerHost,
		rateLimit:        limit,
		burst:            opts.Burst,
		failureThreshold: opts.CircuitFailureThreshold,
		coolDown:         opts.CircuitCoolDown,
		maxCoolDown:      opts.CircuitMaxCoolDown,
		hosts:            map[string]*hostState{},
		lastSweep:        opts.Clock.Now(),
	}
}

// acquire lets one request to key (host:port) go, or refuses it with a *HostBusyError. The caller
// must call the returned release with the request's outcome once it is finished.
func (g *hostGuard) acquire(key string) (release func(outcome), busy *HostBusyError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	g.sweepLocked(now)
	h, ok := g.hosts[key]
	if !ok {
		h = &hostState{}
		if g.rateLimit != rate.Inf {
			h.limiter = rate.NewLimiter(g.rateLimit, g.burst)
		}
		g.hosts[key] = h
	}
	h.lastUsed = now
	refuse := func(reason string, retryAfter time.Duration) (func(outcome), *HostBusyError) {
		if retryAfter <= 0 {
			retryAfter = busyRetryAfter
		}
		return nil, &HostBusyError{Host: key, Reason: reason, RetryAfter: retryAfter}
	}

	isTrial := false
	if h.open {
		switch {
		case now.Before(h.openUntil):
			return refuse(HostBusyCircuitOpen, h.openUntil.Sub(now))
		case h.trial:
			return refuse(HostBusyCircuitOpen, busyRetryAfter)
		default:
			isTrial = true
		}
	}
	if g.maxInFlight > 0 && h.inFlight >= g.maxInFlight {
		return refuse(HostBusyInFlight, busyRetryAfter)
	}
	if h.limiter != nil {
		reservation := h.limiter.ReserveN(now, 1)
		if !reservation.OK() {
			return refuse(HostBusyRateLimited, busyRetryAfter)
		}
		if delay := reservation.DelayFrom(now); delay > 0 {
			reservation.CancelAt(now)
			return refuse(HostBusyRateLimited, delay)
		}
	}
	h.inFlight++
	if isTrial {
		h.trial = true
	}
	var once sync.Once
	return func(result outcome) {
		once.Do(func() { g.release(h, isTrial, result) })
	}, nil
}

// release ends a request acquire let go, and feeds its outcome to the circuit breaker.
func (g *hostGuard) release(h *hostState, isTrial bool, result outcome) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	h.inFlight--
	h.lastUsed = now
	if isTrial {
		h.trial = false
	}
	if g.failureThreshold <= 0 {
		return
	}
	switch result {
	case outcomeSuccess:
		h.failures, h.open, h.openUntil, h.coolDown = 0, false, time.Time{}, 0
	case outcomeFailure:
		h.failures++
		switch {
		case isTrial && h.open: // the trial failed: open again, for twice as long
			h.coolDown = min(2*h.coolDown, g.maxCoolDown)
			h.openUntil = now.Add(h.coolDown)
		case !h.open && h.failures >= g.failureThreshold:
			h.open, h.coolDown = true, min(g.coolDown, g.maxCoolDown)
			h.openUntil = now.Add(h.coolDown)
		}
	}
}

// sweepLocked evicts entries unused for hostIdleTTL, at most once per hostSweepInterval. An
// entry is kept while it means something: requests in flight, a cool-down running, a rate bucket
// not full again (a new entry starts full). g.mu must be held.
func (g *hostGuard) sweepLocked(now time.Time) {
	if now.Sub(g.lastSweep) < hostSweepInterval {
		return
	}
	g.lastSweep = now
	for key, h := range g.hosts {
		if h.inFlight == 0 && !h.trial && now.Sub(h.lastUsed) >= hostIdleTTL && (!h.open || !now.Before(h.openUntil)) &&
			(h.limiter == nil || h.limiter.TokensAt(now) >= float64(h.limiter.Burst())) {
			delete(g.hosts, key)
		}
	}
}

// size returns the number of hosts with an entry, for tests.
func (g *hostGuard) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.hosts)
}

// hostKey returns the per-host key of a normalised base URL: host:port in lower case, with the
// scheme's default port written out.
func hostKey(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return strings.ToLower(base)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if strings.EqualFold(u.Scheme, "http") {
			port = "80"
		}
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// requestOutcome judges what a request's error tells about its host: any answer (even an error
// answer, or a TLS certificate the client does not trust) means it is reachable; a timeout or a
// failure to resolve, connect or keep the connection counts against it; a caller that gave up
// (parent done) or a request refused before sending tells nothing.
func requestOutcome(parent context.Context, err error) outcome {
	if err == nil {
		return outcomeSuccess
	}
	if parent.Err() != nil {
		return outcomeNeutral
	}
	var mauticErr *Error
	var unexpected *UnexpectedResponseError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	if errors.As(err, &mauticErr) || errors.As(err, &unexpected) || IsCertificateError(err) ||
		errors.As(err, &recordErr) || errors.As(err, &alertErr) {
		return outcomeSuccess
	}
	var forbidden *ForbiddenAddressError
	var configErr *ConfigError
	var busy *HostBusyError
	if errors.As(err, &forbidden) || errors.As(err, &configErr) || errors.As(err, &busy) || errors.Is(err, context.Canceled) {
		return outcomeNeutral
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var netErr net.Error
	if errors.As(err, &dnsErr) || errors.As(err, &opErr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &netErr) && netErr.Timeout() ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return outcomeFailure
	}
	return outcomeNeutral
}
