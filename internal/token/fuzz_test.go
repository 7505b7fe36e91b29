package token_test

import (
	"math"
	"testing"
	"time"

	"github.com/mautic-operator/mautic-operator/internal/token"
)

// maxLifetimeSeconds bounds fuzzed lifetimes at about 34,000 years: far past the 292 years a
// time.Duration can hold, so the saturating time.Time.Sub is exercised, but well inside time.Time.
const maxLifetimeSeconds = 1 << 40

// secondsToDuration converts seconds to a time.Duration, saturating instead of overflowing.
func secondsToDuration(seconds int64) time.Duration {
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	switch {
	case seconds > maxSeconds:
		return math.MaxInt64
	case seconds < -maxSeconds:
		return math.MinInt64
	default:
		return time.Duration(seconds) * time.Second
	}
}

// FuzzRenewAt checks that the renewal time of a token with a positive lifetime lies within its
// validity, and that jitter only brings it forward, by at most half of the time to renewal.
func FuzzRenewAt(f *testing.F) {
	f.Add(int64(3600), int64(0), int32(0), int64(0))
	f.Add(int64(3600), int64(600), int32(0), int64(30))
	f.Add(int64(3600), int64(3600), int32(0), int64(0))
	f.Add(int64(3600), int64(7200), int32(50), int64(119))
	f.Add(int64(3600), int64(0), int32(1), int64(120))
	f.Add(int64(3600), int64(0), int32(90), int64(120))
	f.Add(int64(3600), int64(0), int32(100), int64(0))
	f.Add(int64(3600), int64(-60), int32(-5), int64(-30))
	f.Add(int64(1), int64(0), int32(33), int64(1))
	f.Add(int64(1), int64(1), int32(99), int64(math.MaxInt64))
	f.Add(int64(30*24*3600), int64(24*3600), int32(0), int64(120))
	f.Add(int64(300*365*24*3600), int64(math.MaxInt64), int32(0), int64(math.MaxInt64))
	f.Add(int64(maxLifetimeSeconds), int64(0), int32(math.MaxInt32), int64(math.MinInt64))
	f.Add(int64(0), int64(0), int32(0), int64(0))
	f.Add(int64(-3600), int64(600), int32(33), int64(60))

	f.Fuzz(func(t *testing.T, lifetimeSeconds, renewBeforeSeconds int64, percentage int32, jitterSeconds int64) {
		if lifetimeSeconds > maxLifetimeSeconds || lifetimeSeconds < -maxLifetimeSeconds {
			t.Skip("lifetime outside the range time.Time represents comfortably")
		}
		expiresAt := time.Unix(issuedAt.Unix()+lifetimeSeconds, 0).UTC()
		policy := token.RenewalPolicy{
			RenewBefore:           secondsToDuration(renewBeforeSeconds),
			RenewBeforePercentage: percentage,
		}
		jitter := secondsToDuration(jitterSeconds)

		renewAt := token.RenewAt(issuedAt, expiresAt, policy, jitter)

		if lifetimeSeconds <= 0 {
			if !renewAt.Equal(issuedAt) {
				t.Fatalf("RenewAt(%s, %s, %+v, %s) = %s, want issuedAt for a non-positive lifetime",
					issuedAt, expiresAt, policy, jitter, renewAt)
			}
			return
		}
		if renewAt.Before(issuedAt) || renewAt.After(expiresAt) {
			t.Fatalf("RenewAt(%s, %s, %+v, %s) = %s, outside [issuedAt, expiresAt]",
				issuedAt, expiresAt, policy, jitter, renewAt)
		}

		withoutJitter := token.RenewAt(issuedAt, expiresAt, policy, 0)
		if renewAt.After(withoutJitter) {
			t.Fatalf("jitter %s pushed renewal back from %s to %s", jitter, withoutJitter, renewAt)
		}
		broughtForward := withoutJitter.Sub(renewAt)
		if jitter > 0 && broughtForward > jitter {
			t.Fatalf("jitter %s brought renewal forward by %s, more than the jitter", jitter, broughtForward)
		}
		if jitter <= 0 && broughtForward != 0 {
			t.Fatalf("non-positive jitter %s moved renewal by %s", jitter, broughtForward)
		}
		// Halving before comparing keeps a saturated Sub (lifetimes past 292 years) on the safe side.
		if broughtForward > withoutJitter.Sub(issuedAt)/2 {
			t.Fatalf("jitter %s brought renewal forward by %s, more than half of the %s to renewal",
				jitter, broughtForward, withoutJitter.Sub(issuedAt))
		}
	})
}

// FuzzBackoff checks that the retry delay stays within [1s, 5m] and, while a token is still
// valid, leaves room for several attempts before it expires.
func FuzzBackoff(f *testing.F) {
	f.Add(int32(0), int64(0))
	f.Add(int32(1), int64(0))
	f.Add(int32(3), int64(40*time.Second))
	f.Add(int32(7), int64(10*time.Minute))
	f.Add(int32(7), int64(time.Hour))
	f.Add(int32(1), int64(2*time.Second))
	f.Add(int32(1), int64(1))
	f.Add(int32(-1), int64(-time.Hour))
	f.Add(int32(math.MaxInt32), int64(math.MaxInt64))
	f.Add(int32(math.MinInt32), int64(math.MinInt64))

	f.Fuzz(func(t *testing.T, failures int32, remainingNanoseconds int64) {
		remaining := time.Duration(remainingNanoseconds)

		delay := token.Backoff(failures, remaining)

		if delay < time.Second || delay > 5*time.Minute {
			t.Fatalf("Backoff(%d, %s) = %s, outside [1s, 5m]", failures, remaining, delay)
		}
		if remaining > 0 && delay > max(remaining/4, time.Second) {
			t.Fatalf("Backoff(%d, %s) = %s, more than a quarter of the remaining validity", failures, remaining, delay)
		}
		if failures < math.MaxInt32 {
			if next := token.Backoff(failures+1, remaining); next < delay {
				t.Fatalf("Backoff(%d, %s) = %s shrank to %s after one more failure", failures, remaining, delay, next)
			}
		}
	})
}
