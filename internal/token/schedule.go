package token

import (
	"hash/fnv"
	"time"
)

const (
	// DefaultRenewBeforePercentage renews a token when a third of its lifetime is left.
	DefaultRenewBeforePercentage = 33

	// ReverifyInterval is how often credentials without an expiry (Basic) are checked again.
	ReverifyInterval = time.Hour

	// maxJitter bounds the UID-derived jitter, whatever the token lifetime.
	maxJitter = 2 * time.Minute

	// minBackoff and maxBackoff bound the retry delay after transient failures.
	minBackoff = 5 * time.Second
	maxBackoff = 5 * time.Minute

	// minRetry keeps a capped backoff from turning into a hot loop near expiry.
	minRetry = time.Second
)

// RenewalPolicy is spec.refresh: at most one of its fields is set.
type RenewalPolicy struct {
	// RenewBefore renews this long before expiry; zero means "use the percentage".
	RenewBefore time.Duration
	// RenewBeforePercentage renews when this percentage of the lifetime is left; zero means the default.
	RenewBeforePercentage int32
}

// RenewAt returns when a token valid from issuedAt to expiresAt is renewed, brought forward by jitter.
// A zero expiresAt (credentials that do not expire) gives issuedAt plus ReverifyInterval. The result is
// never before issuedAt and never after expiresAt.
func RenewAt(issuedAt, expiresAt time.Time, policy RenewalPolicy, jitter time.Duration) time.Time {
	if expiresAt.IsZero() {
		return issuedAt.Add(ReverifyInterval)
	}
	lifetime := expiresAt.Sub(issuedAt)
	if lifetime <= 0 {
		return issuedAt
	}
	renewBefore := policy.RenewBefore
	if renewBefore <= 0 || renewBefore >= lifetime {
		percentage := policy.RenewBeforePercentage
		if percentage <= 0 || percentage >= 100 {
			percentage = DefaultRenewBeforePercentage
		}
		renewBefore = time.Duration(float64(lifetime) * float64(percentage) / 100)
	}
	renewAt := expiresAt.Add(-renewBefore)
	// Jitter only ever brings the renewal forward, and by at most half of the time left before it.
	if jitter > 0 {
		jitter = min(jitter, renewAt.Sub(issuedAt)/2)
		renewAt = renewAt.Add(-jitter)
	}
	if renewAt.Before(issuedAt) {
		return issuedAt
	}
	return renewAt
}

// Jitter returns a stable offset derived from uid, in [0, min(lifetime/20, 2m)), so that
// connections created together do not all refresh at the same instant.
func Jitter(uid string, lifetime time.Duration) time.Duration {
	window := min(lifetime/20, maxJitter)
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid))
	// The remainder is below window, a positive time.Duration, so converting it back cannot
	// overflow; gosec's range analysis cannot see a bound that is not a constant.
	offset := h.Sum64() % uint64(window)
	return time.Duration(offset) //nolint:gosec // G115: offset < window <= maxJitter
}

// Backoff returns the delay before retrying after failures consecutive transient failures:
// 5s doubling up to 5m, capped at a quarter of remaining, the time the current token is still
// valid, so that several attempts fit before it expires. remaining <= 0 means no valid token.
func Backoff(failures int32, remaining time.Duration) time.Duration {
	delay := minBackoff
	for i := int32(1); i < failures && delay < maxBackoff; i++ {
		delay *= 2
	}
	delay = min(delay, maxBackoff)
	if remaining > 0 {
		delay = min(delay, remaining/4)
	}
	return max(delay, minRetry)
}
