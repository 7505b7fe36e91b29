package localenv

import (
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// PublishedToken is what a token Secret says about the token it holds: when it was issued (to the
// nanosecond, from the operator's issued-at annotation), when it expires (to the second, as the
// expires_at key holds it) and when the operator renews it (its policy and UID-derived jitter).
type PublishedToken struct {
	IssuedAt, RenewAt, ExpiresAt time.Time
}

// ReadPublishedToken reads a token Secret of a connection with the given renewal policy; the
// connection's UID, which the jitter derives from, comes from the Secret's controller reference.
func ReadPublishedToken(secret *corev1.Secret, policy token.RenewalPolicy) (PublishedToken, error) {
	issuedAt, err := time.Parse(time.RFC3339Nano, secret.Annotations[authv1alpha1.TokenIssuedAtAnnotation])
	if err != nil {
		return PublishedToken{}, fmt.Errorf("secret %s: annotation %s: %w", secret.Name, authv1alpha1.TokenIssuedAtAnnotation, err)
	}
	expiresAt, err := time.Parse(time.RFC3339, string(secret.Data[authv1alpha1.ExpiresAtKey]))
	if err != nil {
		return PublishedToken{}, fmt.Errorf("secret %s: key %s: %w", secret.Name, authv1alpha1.ExpiresAtKey, err)
	}
	owner := metav1.GetControllerOf(secret)
	if owner == nil {
		return PublishedToken{}, errors.New("secret " + secret.Name + " has no controller reference")
	}
	jitter := token.Jitter(string(owner.UID), expiresAt.Sub(issuedAt))
	return PublishedToken{IssuedAt: issuedAt, RenewAt: token.RenewAt(issuedAt, expiresAt, policy, jitter), ExpiresAt: expiresAt}, nil
}

// LagSummary is the distribution of refresh lags: how long after its renewal time each token was
// replaced (0 for a refresh that came early).
type LagSummary struct {
	Refreshes     int
	P50, P99, Max time.Duration
}

// SummariseLags returns the distribution of lags; it sorts lags in place.
func SummariseLags(lags []time.Duration) LagSummary {
	if len(lags) == 0 {
		return LagSummary{}
	}
	slices.Sort(lags)
	at := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	return LagSummary{Refreshes: len(lags), P50: at(0.5), P99: at(0.99), Max: lags[len(lags)-1]}
}

// RefreshLag is how late next replaced previous: next's issue time minus previous's renewal time,
// never negative.
func RefreshLag(previous, next PublishedToken) time.Duration {
	return max(next.IssuedAt.Sub(previous.RenewAt), 0)
}

// String reads "N refreshes, lag p50 …, p99 …, max …".
func (s LagSummary) String() string {
	return fmt.Sprintf("%d refreshes, lag p50 %s, p99 %s, max %s", s.Refreshes,
		s.P50.Round(time.Millisecond), s.P99.Round(time.Millisecond), s.Max.Round(time.Millisecond))
}
