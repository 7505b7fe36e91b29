package token_test

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/token"
)

// issuedAt is the fixed instant every schedule test issues its token at.
var issuedAt = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// uidLike returns the i-th of a family of distinct, UUID-shaped object UIDs.
func uidLike(i int) string {
	return fmt.Sprintf("%08x-3b2a-4c1d-9e8f-%012x", i*2654435761%(1<<32), i*7919)
}

func TestRenewAt(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name            string
		lifetime        time.Duration
		policy          token.RenewalPolicy
		jitter          time.Duration
		wantSinceIssued time.Duration // renewAt minus issuedAt
	}{
		{
			// 33% of 1h is 19m48s before expiry.
			name:            "default percentage on a one hour token",
			lifetime:        time.Hour,
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "default percentage on a thirty day token",
			lifetime:        30 * 24 * time.Hour,
			wantSinceIssued: 30 * 24 * time.Hour * 67 / 100,
		},
		{
			name:            "explicit renewBefore",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: 10 * time.Minute},
			wantSinceIssued: 50 * time.Minute,
		},
		{
			name:            "renewBefore one nanosecond short of the lifetime",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: time.Hour - time.Nanosecond},
			wantSinceIssued: time.Nanosecond,
		},
		{
			name:            "renewBefore equal to the lifetime falls back to the default percentage",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: time.Hour},
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "renewBefore longer than the lifetime falls back to the default percentage",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: 2 * time.Hour},
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "renewBefore longer than the lifetime falls back to a set percentage",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: 2 * time.Hour, RenewBeforePercentage: 50},
			wantSinceIssued: 30 * time.Minute,
		},
		{
			name:            "negative renewBefore means the default percentage",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: -time.Minute},
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "percentage 1",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBeforePercentage: 1},
			wantSinceIssued: 59*time.Minute + 24*time.Second,
		},
		{
			name:            "percentage 90",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBeforePercentage: 90},
			wantSinceIssued: 6 * time.Minute,
		},
		{
			name:            "percentage 0 means the default",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBeforePercentage: 0},
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "percentage 100 falls back to the default",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBeforePercentage: 100},
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "negative percentage falls back to the default",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBeforePercentage: -5},
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			name:            "jitter brings the renewal forward",
			lifetime:        time.Hour,
			jitter:          30 * time.Second,
			wantSinceIssued: 39*time.Minute + 42*time.Second,
		},
		{
			name:            "jitter is capped at half of the time to renewal",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: 50 * time.Minute},
			jitter:          20 * time.Minute,
			wantSinceIssued: 5 * time.Minute,
		},
		{
			name:            "jitter just under the cap is applied whole",
			lifetime:        time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: 50 * time.Minute},
			jitter:          2 * time.Minute,
			wantSinceIssued: 8 * time.Minute,
		},
		{
			name:            "negative jitter is ignored",
			lifetime:        time.Hour,
			jitter:          -time.Minute,
			wantSinceIssued: 40*time.Minute + 12*time.Second,
		},
		{
			// 33% of 1ns truncates to 0, so renewal is at expiry and there is no room for jitter.
			name:            "one nanosecond lifetime renews at expiry",
			lifetime:        time.Nanosecond,
			jitter:          time.Second,
			wantSinceIssued: time.Nanosecond,
		},
		{
			name:            "expiresAt equal to issuedAt renews at issuedAt",
			lifetime:        0,
			jitter:          time.Second,
			wantSinceIssued: 0,
		},
		{
			name:            "expiresAt before issuedAt renews at issuedAt",
			lifetime:        -time.Hour,
			policy:          token.RenewalPolicy{RenewBefore: 10 * time.Minute},
			jitter:          time.Second,
			wantSinceIssued: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			expiresAt := issuedAt.Add(tt.lifetime)
			renewAt := token.RenewAt(issuedAt, expiresAt, tt.policy, tt.jitter)

			g.Expect(renewAt).To(Equal(issuedAt.Add(tt.wantSinceIssued)))
		})
	}
}

func TestRenewAtWithoutExpiry(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		policy token.RenewalPolicy
		jitter time.Duration
	}{
		{name: "default policy"},
		{name: "renewBefore is ignored", policy: token.RenewalPolicy{RenewBefore: 10 * time.Minute}},
		{name: "percentage is ignored", policy: token.RenewalPolicy{RenewBeforePercentage: 90}},
		{name: "jitter is ignored", jitter: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			renewAt := token.RenewAt(issuedAt, time.Time{}, tt.policy, tt.jitter)

			g.Expect(renewAt).To(Equal(issuedAt.Add(token.ReverifyInterval)))
			g.Expect(renewAt).To(Equal(issuedAt.Add(time.Hour)))
		})
	}
}

func TestRenewAtJitterOnlyBringsRenewalForward(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		lifetime time.Duration
		policy   token.RenewalPolicy
	}{
		{name: "one hour token with default percentage", lifetime: time.Hour},
		{name: "one hour token renewed ten minutes before expiry", lifetime: time.Hour, policy: token.RenewalPolicy{RenewBefore: 10 * time.Minute}},
		{name: "one hour token renewed fifty minutes before expiry", lifetime: time.Hour, policy: token.RenewalPolicy{RenewBefore: 50 * time.Minute}},
		{name: "one minute token with percentage 90", lifetime: time.Minute, policy: token.RenewalPolicy{RenewBeforePercentage: 90}},
		{name: "ten second token with percentage 1", lifetime: 10 * time.Second, policy: token.RenewalPolicy{RenewBeforePercentage: 1}},
		{name: "thirty day token with default percentage", lifetime: 30 * 24 * time.Hour},
	}
	jitters := []time.Duration{
		time.Nanosecond, time.Millisecond, time.Second, 30 * time.Second, 2 * time.Minute,
		10 * time.Minute, time.Hour, 100 * 24 * time.Hour,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			expiresAt := issuedAt.Add(tt.lifetime)
			withoutJitter := token.RenewAt(issuedAt, expiresAt, tt.policy, 0)
			timeToRenewal := withoutJitter.Sub(issuedAt)

			for _, jitter := range jitters {
				renewAt := token.RenewAt(issuedAt, expiresAt, tt.policy, jitter)
				broughtForward := withoutJitter.Sub(renewAt)

				g.Expect(broughtForward).To(BeNumerically(">=", 0), "jitter %s", jitter)
				g.Expect(broughtForward).To(BeNumerically("<=", jitter), "jitter %s", jitter)
				g.Expect(broughtForward).To(BeNumerically("<=", timeToRenewal/2), "jitter %s", jitter)
				g.Expect(renewAt).To(BeTemporally(">=", issuedAt), "jitter %s", jitter)
			}
		})
	}
}

func TestRenewAtStaysWithinValidity(t *testing.T) {
	t.Parallel()

	lifetimes := []time.Duration{
		time.Nanosecond, 2 * time.Nanosecond, time.Microsecond, time.Second, time.Minute,
		time.Hour, 24 * time.Hour, 365 * 24 * time.Hour,
	}
	policies := []token.RenewalPolicy{
		{},
		{RenewBefore: time.Nanosecond},
		{RenewBefore: time.Second},
		{RenewBefore: 10 * time.Minute},
		{RenewBefore: 100 * 24 * time.Hour},
		{RenewBefore: -time.Hour},
		{RenewBeforePercentage: 1},
		{RenewBeforePercentage: 33},
		{RenewBeforePercentage: 90},
		{RenewBeforePercentage: 99},
		{RenewBeforePercentage: 150},
	}
	jitters := []time.Duration{-time.Hour, 0, time.Nanosecond, time.Second, 2 * time.Minute, 1000 * time.Hour}

	for _, lifetime := range lifetimes {
		t.Run(lifetime.String(), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			expiresAt := issuedAt.Add(lifetime)
			for _, policy := range policies {
				for _, jitter := range jitters {
					renewAt := token.RenewAt(issuedAt, expiresAt, policy, jitter)

					g.Expect(renewAt).To(BeTemporally(">=", issuedAt), "policy %+v, jitter %s", policy, jitter)
					g.Expect(renewAt).To(BeTemporally("<=", expiresAt), "policy %+v, jitter %s", policy, jitter)
				}
			}
		})
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		lifetime time.Duration
		window   time.Duration // Jitter must be in [0, window), or exactly 0 when window is 0
	}{
		{name: "zero lifetime", lifetime: 0, window: 0},
		{name: "negative lifetime", lifetime: -time.Hour, window: 0},
		{name: "lifetime too short for a window", lifetime: 19 * time.Nanosecond, window: 0},
		{name: "one nanosecond window", lifetime: 20 * time.Nanosecond, window: time.Nanosecond},
		{name: "one minute lifetime gives a three second window", lifetime: time.Minute, window: 3 * time.Second},
		{name: "forty minute lifetime gives exactly the two minute cap", lifetime: 40 * time.Minute, window: 2 * time.Minute},
		{name: "one hour lifetime is capped at two minutes", lifetime: time.Hour, window: 2 * time.Minute},
		{name: "one year lifetime is capped at two minutes", lifetime: 365 * 24 * time.Hour, window: 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			for i := range 1000 {
				uid := uidLike(i)
				jitter := token.Jitter(uid, tt.lifetime)

				if tt.window == 0 {
					g.Expect(jitter).To(BeZero(), "uid %s", uid)
					continue
				}
				g.Expect(jitter).To(BeNumerically(">=", 0), "uid %s", uid)
				g.Expect(jitter).To(BeNumerically("<", tt.window), "uid %s", uid)
			}
		})
	}
}

func TestJitterIsStable(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		uid      string
		lifetime time.Duration
	}{
		{name: "empty uid", uid: "", lifetime: time.Hour},
		{name: "uuid with one hour lifetime", uid: "0f8fad5b-d9cb-469f-a165-70867728950e", lifetime: time.Hour},
		{name: "uuid with one minute lifetime", uid: "7c9e6679-7425-40de-944b-e07fc1f90ae7", lifetime: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			first := token.Jitter(tt.uid, tt.lifetime)
			for range 100 {
				g.Expect(token.Jitter(tt.uid, tt.lifetime)).To(Equal(first))
			}
		})
	}
}

// TestJitterIsStableAcrossRestarts pins one value, so that swapping FNV for a per-process seeded
// hash (hash/maphash), which would move every renewal on each operator restart, fails here.
func TestJitterIsStableAcrossRestarts(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)

	// FNV-1a 64 of the empty string is its offset basis 0xcbf29ce484222325; modulo 2m in ns.
	const offsetBasis = uint64(0xcbf29ce484222325)
	want := time.Duration(offsetBasis % uint64(2*time.Minute))

	g.Expect(token.Jitter("", time.Hour)).To(Equal(want))
}

func TestJitterSpreadsUIDs(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		lifetime    time.Duration
		window      time.Duration
		minDistinct int
	}{
		{name: "one hour lifetime", lifetime: time.Hour, window: 2 * time.Minute, minDistinct: 990},
		{name: "one minute lifetime", lifetime: time.Minute, window: 3 * time.Second, minDistinct: 990},
		{name: "two hundred nanosecond lifetime", lifetime: 200 * time.Nanosecond, window: 10 * time.Nanosecond, minDistinct: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			const uids, buckets = 1000, 10
			distinct := map[time.Duration]struct{}{}
			perBucket := make([]int, buckets)
			for i := range uids {
				jitter := token.Jitter(uidLike(i), tt.lifetime)
				distinct[jitter] = struct{}{}
				perBucket[int(jitter*buckets/tt.window)]++
			}

			g.Expect(len(distinct)).To(BeNumerically(">=", tt.minDistinct))
			// 100 expected per bucket; 50 is about five standard deviations below.
			for bucket, count := range perBucket {
				g.Expect(count).To(BeNumerically(">=", 50), "bucket %d of %v", bucket, perBucket)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		failures  int32
		remaining time.Duration
		want      time.Duration
	}{
		{name: "negative failures start at five seconds", failures: -1, want: 5 * time.Second},
		{name: "zero failures start at five seconds", failures: 0, want: 5 * time.Second},
		{name: "first failure waits five seconds", failures: 1, want: 5 * time.Second},
		{name: "second failure waits ten seconds", failures: 2, want: 10 * time.Second},
		{name: "third failure waits twenty seconds", failures: 3, want: 20 * time.Second},
		{name: "fourth failure waits forty seconds", failures: 4, want: 40 * time.Second},
		{name: "fifth failure waits eighty seconds", failures: 5, want: 80 * time.Second},
		{name: "sixth failure waits 160 seconds", failures: 6, want: 160 * time.Second},
		{name: "seventh failure is capped at five minutes", failures: 7, want: 5 * time.Minute},
		{name: "eighth failure stays at five minutes", failures: 8, want: 5 * time.Minute},
		{name: "thousandth failure stays at five minutes", failures: 1000, want: 5 * time.Minute},
		{name: "max int32 failures stay at five minutes", failures: 1<<31 - 1, want: 5 * time.Minute},
		{name: "long remaining validity does not cap", failures: 7, remaining: time.Hour, want: 5 * time.Minute},
		{name: "remaining exactly four times the delay does not cap", failures: 2, remaining: 40 * time.Second, want: 10 * time.Second},
		{name: "capped at a quarter of ten minutes remaining", failures: 7, remaining: 10 * time.Minute, want: 150 * time.Second},
		{name: "capped at a quarter of forty seconds remaining", failures: 3, remaining: 40 * time.Second, want: 10 * time.Second},
		{name: "capped at a quarter of six seconds remaining", failures: 1, remaining: 6 * time.Second, want: 1500 * time.Millisecond},
		{name: "never below one second with four seconds remaining", failures: 7, remaining: 4 * time.Second, want: time.Second},
		{name: "never below one second with two seconds remaining", failures: 1, remaining: 2 * time.Second, want: time.Second},
		{name: "never below one second with one nanosecond remaining", failures: 7, remaining: time.Nanosecond, want: time.Second},
		{name: "zero remaining means uncapped", failures: 7, remaining: 0, want: 5 * time.Minute},
		{name: "negative remaining means uncapped", failures: 7, remaining: -time.Hour, want: 5 * time.Minute},
		{name: "negative remaining keeps the first delay", failures: 1, remaining: -time.Hour, want: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			g.Expect(token.Backoff(tt.failures, tt.remaining)).To(Equal(tt.want))
		})
	}
}

func TestBackoffNeverShrinksWithMoreFailures(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		remaining time.Duration
	}{
		{name: "no valid token", remaining: 0},
		{name: "one hour remaining", remaining: time.Hour},
		{name: "one minute remaining", remaining: time.Minute},
		{name: "one second remaining", remaining: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			previous := token.Backoff(0, tt.remaining)
			for failures := int32(1); failures <= 64; failures++ {
				delay := token.Backoff(failures, tt.remaining)
				g.Expect(delay).To(BeNumerically(">=", previous), "failures %d", failures)
				previous = delay
			}
		})
	}
}
