package mautic

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"
)

// guardStart is when the fake clocks of the host guard tests start.
var guardStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testGuard returns the host guard of a client made with opts and a fake clock, and the clock.
func testGuard(opts Options) (*hostGuard, *clocktesting.FakeClock) {
	fake := clocktesting.NewFakeClock(guardStart)
	opts.Clock = fake
	return New(opts).(*client).hosts, fake
}

// expectBusy checks that acquiring key is refused for reason, with retryAfter.
func expectBusy(g Gomega, guard *hostGuard, key, reason string, retryAfter time.Duration) {
	release, busy := guard.acquire(key)
	g.Expect(release).To(BeNil())
	g.Expect(busy).To(HaveOccurred(), "acquire(%s) should be refused for %s", key, reason)
	g.Expect(*busy).To(Equal(HostBusyError{Host: key, Reason: reason, RetryAfter: retryAfter}))
}

// mustAcquire acquires key and returns the release.
func mustAcquire(g Gomega, guard *hostGuard, key string) func(outcome) {
	release, busy := guard.acquire(key)
	g.Expect(busy).NotTo(HaveOccurred())
	g.Expect(release).NotTo(BeNil())
	return release
}

func TestHostGuardConcurrency(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	guard, _ := testGuard(Options{MaxConcurrentPerHost: 2, RequestsPerSecond: -1})
	first := mustAcquire(g, guard, "m.example.com:443")
	second := mustAcquire(g, guard, "m.example.com:443")
	expectBusy(g, guard, "m.example.com:443", HostBusyInFlight, time.Second)
	other := mustAcquire(g, guard, "other.example.com:443") // another host has its own slots

	first(outcomeSuccess)
	first(outcomeSuccess) // a second release is ignored
	third := mustAcquire(g, guard, "m.example.com:443")
	expectBusy(g, guard, "m.example.com:443", HostBusyInFlight, time.Second)
	for _, release := range []func(outcome){second, third, other} {
		release(outcomeNeutral)
	}

	unlimited, _ := testGuard(Options{MaxConcurrentPerHost: -1, RequestsPerSecond: -1})
	for range 100 {
		mustAcquire(g, unlimited, "m.example.com:443")
	}
	defaults, _ := testGuard(Options{RequestsPerSecond: -1})
	for range DefaultMaxConcurrentPerHost {
		mustAcquire(g, defaults, "m.example.com:443")
	}
	expectBusy(g, defaults, "m.example.com:443", HostBusyInFlight, time.Second)
}

func TestHostGuardRateLimit(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	guard, clock := testGuard(Options{RequestsPerSecond: 2, Burst: 2, MaxConcurrentPerHost: 3})
	key := "m.example.com:443"
	mustAcquire(g, guard, key)(outcomeSuccess)
	mustAcquire(g, guard, key)(outcomeSuccess)
	expectBusy(g, guard, key, HostBusyRateLimited, 500*time.Millisecond)
	expectBusy(g, guard, key, HostBusyRateLimited, 500*time.Millisecond) // a refusal takes no token
	clock.Step(200 * time.Millisecond)
	expectBusy(g, guard, key, HostBusyRateLimited, 300*time.Millisecond)
	clock.Step(300 * time.Millisecond)
	held := mustAcquire(g, guard, key)
	clock.Step(time.Second) // the bucket is full again: two tokens
	held2 := mustAcquire(g, guard, key)
	held3 := mustAcquire(g, guard, key)
	// The in-flight limit is checked first: a refused request keeps the bucket's tokens.
	expectBusy(g, guard, key, HostBusyInFlight, time.Second)
	held(outcomeSuccess)
	expectBusy(g, guard, key, HostBusyRateLimited, 500*time.Millisecond)
	held2(outcomeSuccess)
	held3(outcomeSuccess)
}

func TestHostGuardCircuitBreaker(t *testing.T) {
	t.Parallel()
	const key = "m.example.com:443"
	fail := func(g Gomega, guard *hostGuard, n int) {
		for range n {
			mustAcquire(g, guard, key)(outcomeFailure)
		}
	}
	t.Run("opens, half-opens, doubles and closes", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		guard, clock := testGuard(Options{RequestsPerSecond: -1, CircuitFailureThreshold: 3, CircuitCoolDown: 30 * time.Second,
			CircuitMaxCoolDown: 100 * time.Second})
		fail(g, guard, 2)
		mustAcquire(g, guard, "other.example.com:443")(outcomeFailure) // another host's failures do not count
		inFlight := mustAcquire(g, guard, key)                         // started before the circuit opens
		fail(g, guard, 1)
		expectBusy(g, guard, key, HostBusyCircuitOpen, 30*time.Second)
		inFlight(outcomeFailure) // a failure while open does not extend the cool-down
		clock.Step(10 * time.Second)
		expectBusy(g, guard, key, HostBusyCircuitOpen, 20*time.Second)
		mustAcquire(g, guard, "other.example.com:443")(outcomeSuccess)

		clock.Step(20 * time.Second)
		trial := mustAcquire(g, guard, key) // half-open: one trial goes
		expectBusy(g, guard, key, HostBusyCircuitOpen, time.Second)
		trial(outcomeFailure)
		expectBusy(g, guard, key, HostBusyCircuitOpen, 60*time.Second)

		clock.Step(60 * time.Second)
		mustAcquire(g, guard, key)(outcomeFailure)
		expectBusy(g, guard, key, HostBusyCircuitOpen, 100*time.Second) // 120s, capped

		clock.Step(100 * time.Second)
		mustAcquire(g, guard, key)(outcomeNeutral) // the caller gave up: still half-open
		trial = mustAcquire(g, guard, key)
		expectBusy(g, guard, key, HostBusyCircuitOpen, time.Second)
		trial(outcomeSuccess)

		// Closed, with the count reset: it takes three failures in a row again.
		fail(g, guard, 2)
		mustAcquire(g, guard, key)(outcomeSuccess)
		fail(g, guard, 2)
		mustAcquire(g, guard, key)(outcomeNeutral)
		release := mustAcquire(g, guard, key)
		release(outcomeFailure)
		expectBusy(g, guard, key, HostBusyCircuitOpen, 30*time.Second)
	})
	t.Run("default cool-downs", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		guard, clock := testGuard(Options{RequestsPerSecond: -1})
		fail(g, guard, DefaultCircuitFailureThreshold-1)
		mustAcquire(g, guard, key)(outcomeFailure)
		for _, coolDown := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
			expectBusy(g, guard, key, HostBusyCircuitOpen, coolDown)
			clock.Step(coolDown)
			mustAcquire(g, guard, key)(outcomeFailure)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		guard, _ := testGuard(Options{RequestsPerSecond: -1, CircuitFailureThreshold: -1})
		fail(g, guard, 100)
		mustAcquire(g, guard, key)(outcomeSuccess)
	})
}

func TestHostGuardEviction(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	guard, clock := testGuard(Options{RequestsPerSecond: 1, Burst: 1, CircuitFailureThreshold: 1, CircuitCoolDown: 20 * time.Minute,
		CircuitMaxCoolDown: 20 * time.Minute})
	for i := range 50 {
		mustAcquire(g, guard, fmt.Sprintf("h%d.example.com:443", i))(outcomeSuccess)
	}
	inFlight := mustAcquire(g, guard, "busy.example.com:443")
	mustAcquire(g, guard, "open.example.com:443")(outcomeFailure)
	g.Expect(guard.size()).To(Equal(52))

	clock.Step(9 * time.Minute)
	mustAcquire(g, guard, "h0.example.com:443")(outcomeSuccess) // used again: kept
	g.Expect(guard.size()).To(Equal(52), "nothing is idle for 10 minutes yet")

	clock.Step(time.Minute)
	mustAcquire(g, guard, "new.example.com:443")(outcomeSuccess) // a use sweeps lazily
	g.Expect(guard.size()).To(Equal(4), "h0 (used a minute ago), busy (in flight), open (cooling down) and new are kept")

	inFlight(outcomeSuccess)
	clock.Step(20 * time.Minute)
	mustAcquire(g, guard, "new2.example.com:443")(outcomeSuccess)
	g.Expect(guard.size()).To(Equal(1))

	// A rate bucket that is not full again keeps its entry, so eviction never lifts a limit.
	slow, clock := testGuard(Options{RequestsPerSecond: 0.001, Burst: 1})
	mustAcquire(g, slow, "slow.example.com:443")(outcomeSuccess)
	clock.Step(11 * time.Minute)
	mustAcquire(g, slow, "other.example.com:443")(outcomeSuccess)
	_, busy := slow.acquire("slow.example.com:443")
	g.Expect(busy).To(HaveOccurred(), "the bucket was not refilled by an eviction")
	g.Expect(busy.RetryAfter).To(BeNumerically("~", 340*time.Second, time.Millisecond))
}

func TestHostKey(t *testing.T) {
	t.Parallel()
	cases := []struct{ base, want string }{
		{"https://m.example.com", "m.example.com:443"},
		{"http://m.example.com/index.php", "m.example.com:80"},
		{"https://m.example.com:8443", "m.example.com:8443"},
		{"https://M.Example.com", "m.example.com:443"},
		{"https://[2001:db8::1]", "[2001:db8::1]:443"},
		{"http://127.0.0.1:8080", "127.0.0.1:8080"},
	}
	for _, tc := range cases {
		t.Run(tc.base, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(hostKey(tc.base)).To(Equal(tc.want))
		})
	}
}

func TestRequestOutcome(t *testing.T) {
	t.Parallel()
	wrapped := func(err error) error { return &url.Error{Op: "Post", URL: "https://m.example.com", Err: err} }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name   string
		parent context.Context
		err    error
		want   outcome
	}{
		{"nil", context.Background(), nil, outcomeSuccess},
		{"Mautic error answer", context.Background(), &Error{Op: OpToken, StatusCode: 500}, outcomeSuccess},
		{"HTML answer", context.Background(), &UnusableAnswerError{UnexpectedResponseError: &UnexpectedResponseError{StatusCode: 200}}, outcomeSuccess},
		{"certificate", context.Background(), wrapped(x509.UnknownAuthorityError{}), outcomeSuccess},
		{"our timeout", context.Background(), &requestError{err: context.DeadlineExceeded}, outcomeFailure},
		{"refused", context.Background(), wrapped(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), outcomeFailure},
		{"reset", context.Background(), wrapped(os.NewSyscallError("read", syscall.ECONNRESET)), outcomeFailure},
		{"EOF", context.Background(), wrapped(io.EOF), outcomeFailure},
		{"DNS", context.Background(), wrapped(&net.DNSError{Err: "no such host", Name: "m.example.com"}), outcomeFailure},
		{"caller gave up", cancelled, wrapped(context.Canceled), outcomeNeutral},
		{"caller's deadline", cancelled, wrapped(context.DeadlineExceeded), outcomeNeutral},
		{"forbidden", context.Background(), &ForbiddenAddressError{Host: "h"}, outcomeNeutral},
		{"busy", context.Background(), &HostBusyError{}, outcomeNeutral},
		{"unknown", context.Background(), errors.New("boom"), outcomeNeutral},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(requestOutcome(tc.parent, tc.err)).To(Equal(tc.want))
		})
	}
}

func TestHostBusyError(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	err := fmt.Errorf("refreshing: %w", &HostBusyError{Host: "m.example.com:443", Reason: HostBusyRateLimited, RetryAfter: 3 * time.Second})
	retryAfter, ok := IsHostBusy(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(retryAfter).To(Equal(3 * time.Second))
	g.Expect(Classify(err)).To(Equal(ClassTransient))
	g.Expect(IsAmbiguous(err)).To(BeFalse())
	_, ok = IsHostBusy(errors.New("other"))
	g.Expect(ok).To(BeFalse())
	_, ok = IsHostBusy(nil)
	g.Expect(ok).To(BeFalse())
}

func TestTokenFailsFastWhenHostBusy(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var received atomic.Int32
	unblock := make(chan struct{})
	srv := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
		select {
		case <-unblock:
		case <-r.Context().Done():
		}
		answerWith(http.StatusOK, "application/json", `{"access_token":"at"}`)(w, r)
	})
	observed := atomic.Int32{}
	opts := fastOptions()
	opts.MaxConcurrentPerHost = 2
	opts.Observe = func(Op, Grant, int, time.Duration) { observed.Add(1) }
	c := New(opts)
	req := TokenRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			_, err := c.Token(context.Background(), req)
			errs <- err
		})
	}
	g.Eventually(received.Load).Should(BeEquivalentTo(2))

	_, err := c.Token(context.Background(), req)
	retryAfter, busy := IsHostBusy(err)
	g.Expect(busy).To(BeTrue(), "%T %v", err, err)
	g.Expect(retryAfter).To(Equal(time.Second))
	g.Expect(err).To(MatchError(fmt.Sprintf("not sending a request to Mautic at %s: too many requests in flight; retry after 1s", srv.Listener.Addr())))
	_, err = c.Verify(context.Background(), VerifyRequest{Site: req.Site, Authorization: BearerAuthorization("t0ken")})
	_, busy = IsHostBusy(err)
	g.Expect(busy).To(BeTrue(), "Token and Verify share the host's slots")

	close(unblock)
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(received.Load()).To(BeEquivalentTo(2), "the refused requests were never sent")
	g.Expect(observed.Load()).To(BeEquivalentTo(2))
	_, err = c.Token(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred(), "the slots are free again")
}

func TestCircuitOpensOnConnectionFailures(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var broken atomic.Bool
	broken.Store(true)
	var received atomic.Int32
	srv := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
		if broken.Load() {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close() // no answer: the client sees EOF
			}
			return
		}
		answerWith(http.StatusOK, "application/json", `{"access_token":"at"}`)(w, r)
	})
	fake := clocktesting.NewFakeClock(guardStart)
	opts := fastOptions()
	opts.Clock = fake
	c := New(opts)
	req := TokenRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"}
	token := func() error {
		_, err := c.Token(context.Background(), req)
		return err
	}

	for i := range DefaultCircuitFailureThreshold {
		err := token()
		g.Expect(err).To(HaveOccurred())
		_, busy := IsHostBusy(err)
		g.Expect(busy).To(BeFalse(), "failure %d is sent", i+1)
	}
	err := token()
	var busy *HostBusyError
	g.Expect(errors.As(err, &busy)).To(BeTrue(), "%T %v", err, err)
	g.Expect(busy.Reason).To(Equal(HostBusyCircuitOpen))
	g.Expect(busy.RetryAfter).To(Equal(DefaultCircuitCoolDown))
	g.Expect(received.Load()).To(BeEquivalentTo(DefaultCircuitFailureThreshold))

	fake.Step(DefaultCircuitCoolDown)
	g.Expect(token()).NotTo(Succeed()) // the trial fails: open for twice as long
	retryAfter, _ := IsHostBusy(token())
	g.Expect(retryAfter).To(Equal(2 * DefaultCircuitCoolDown))

	broken.Store(false)
	fake.Step(2 * DefaultCircuitCoolDown)
	g.Expect(token()).To(Succeed()) // the trial succeeds: closed
	g.Expect(token()).To(Succeed())
	g.Expect(received.Load()).To(BeEquivalentTo(DefaultCircuitFailureThreshold + 3))
}
