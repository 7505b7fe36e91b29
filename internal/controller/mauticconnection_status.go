package controller

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// statusFacts are what a reconcile learnt; the status is computed from them alone, once, at the end.
type statusFacts struct {
	now time.Time
	// clean is false when the reconcile ended on an error that will be retried (an API server
	// error, say): the status then does not claim to describe the current generation.
	clean     bool
	suspended bool
	// current is the token published (or that would be, were the Secret writable); nil when none.
	current *issuedToken
	// renewAt is when current is due for renewal.
	renewAt time.Time
	// refreshTokenExpiresAt is when the stored refresh token would lapse (AuthorizationCode).
	refreshTokenExpiresAt time.Time
	// issuedNow is true when current was obtained in this reconcile.
	issuedNow bool
	// failure is this reconcile's failed attempt, nil when none.
	failure *failure
	// mauticVersion is the Mautic-Version header seen while verifying, "" when not seen.
	mauticVersion string
	// refreshRequest is the refresh-requested-at annotation's value.
	refreshRequest string
	// minTokenInterval is the least time between two token requests.
	minTokenInterval time.Duration
}

// facts gathers the scope's facts for computeStatus.
func (s *scope) facts(clean bool) statusFacts {
	f := statusFacts{
		now:            s.now,
		clean:          clean,
		suspended:      s.conn.Spec.Suspend,
		current:        s.current,
		issuedNow:      s.issuedNow,
		failure:        s.failure,
		refreshRequest: refreshRequest(s.conn),

		minTokenInterval: s.minTokenInterval,
	}
	if s.current != nil {
		f.renewAt = s.renewAt(s.current)
	}
	if s.conn.EffectiveGrant() == authv1alpha1.GrantAuthorizationCode && !s.refreshTokenIssuedAt.IsZero() {
		f.refreshTokenExpiresAt = s.refreshTokenIssuedAt.Add(refreshTokenLifetime(s.conn))
	}
	if s.verified != nil {
		f.mauticVersion = s.verified.MauticVersion
	}
	return f
}

// maxMauticVersionBytes is the maxLength of status.mauticVersion.
const maxMauticVersionBytes = 64

// computeStatus writes the whole status from facts.
func computeStatus(conn *authv1alpha1.MauticConnection, f statusFacts) {
	status := &conn.Status
	status.TokenSecretName = conn.TokenSecretName()
	if f.suspended {
		setSuspendedConditions(conn, f)
		setObservedGeneration(conn, f)
		return
	}
	setTokenTimes(status, f)
	setFailureCounters(status, f)
	if f.mauticVersion != "" && len(f.mauticVersion) <= maxMauticVersionBytes {
		status.MauticVersion = f.mauticVersion
	}
	switch {
	case f.issuedNow:
		status.LastHandledRefreshRequest = f.refreshRequest
	case f.current != nil && f.current.RefreshRequest != "":
		// The request the current token answered is handled, whatever an older cached status says:
		// a reconcile that follows the operator's own write then computes the status it wrote.
		status.LastHandledRefreshRequest = f.current.RefreshRequest
	}
	setReadyCondition(conn, f)
	setReconcilingCondition(conn, f)
	setStalledCondition(conn, f)
	setObservedGeneration(conn, f)
}

// setSuspendedConditions keeps the last conditions of a suspended connection, which refreshes
// nothing, until its token expires: then Ready turns False with reason Suspended.
func setSuspendedConditions(conn *authv1alpha1.MauticConnection, f statusFacts) {
	meta.RemoveStatusCondition(&conn.Status.Conditions, authv1alpha1.ReconcilingCondition)
	expiresAt := conn.Status.ExpiresAt
	if expiresAt == nil || f.now.Before(expiresAt.Time) {
		return
	}
	meta.SetStatusCondition(&conn.Status.Conditions, metav1.Condition{
		Type: authv1alpha1.ReadyCondition, Status: metav1.ConditionFalse, ObservedGeneration: conn.Generation, LastTransitionTime: metav1.NewTime(f.now.Truncate(time.Second)),
		Reason: authv1alpha1.SuspendedReason,
		Message: fmt.Sprintf("spec.suspend is true: the token expired at %s and is not refreshed; set spec.suspend to false to resume",
			formatTime(expiresAt.Time)),
	})
}

// setTokenTimes reports the current token's expiry, renewal and issue times.
func setTokenTimes(status *authv1alpha1.MauticConnectionStatus, f statusFacts) {
	if f.current == nil {
		return
	}
	status.ExpiresAt = optionalTime(f.current.ExpiresAt)
	status.RenewAt = optionalTime(f.renewAt)
	status.LastRefreshTime = optionalTime(f.current.IssuedAt)
	if !f.refreshTokenExpiresAt.IsZero() {
		status.RefreshTokenExpiresAt = optionalTime(f.refreshTokenExpiresAt)
	}
}

// setFailureCounters counts consecutive failures and resets them on a new token.
func setFailureCounters(status *authv1alpha1.MauticConnectionStatus, f statusFacts) {
	switch {
	case f.failure != nil:
		status.FailedAttempts++
		status.LastFailureTime = optionalTime(f.now)
	case f.issuedNow:
		status.FailedAttempts = 0
	}
}

// setReadyCondition is True while a valid token is published and nothing needs a person.
func setReadyCondition(conn *authv1alpha1.MauticConnection, f statusFacts) {
	ready := metav1.Condition{Type: authv1alpha1.ReadyCondition, ObservedGeneration: conn.Generation, LastTransitionTime: metav1.NewTime(f.now.Truncate(time.Second))}
	valid := f.current.valid(f.now)
	switch {
	case f.failure != nil && f.failure.class != mautic.ClassTransient:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, f.failure.reason, f.failure.message
	case valid:
		ready.Status, ready.Reason = metav1.ConditionTrue, readyReason(f.current)
		ready.Message = fmt.Sprintf("%s; next refresh at %s", capitalised(validityPhrase(f.current)), formatTime(f.renewAt))
		if f.current.TokenType == tokenTypeBasic {
			ready.Message = fmt.Sprintf("Credentials verified at %s; next check at %s", formatTime(f.current.IssuedAt), formatTime(f.renewAt))
		}
		if lifetime := f.current.ExpiresAt.Sub(f.current.IssuedAt); !f.current.ExpiresAt.IsZero() && lifetime < f.minTokenInterval {
			ready.Message += fmt.Sprintf("; the server's tokens live %s, less than the %s the operator waits between token "+
				"requests, so the published token is expired part of the time", lifetime, f.minTokenInterval)
		}
	case f.current != nil && f.failure != nil:
		ready.Status, ready.Reason = metav1.ConditionFalse, authv1alpha1.TokenExpiredReason
		ready.Message = fmt.Sprintf("The token expired at %s and refreshing failed: %s", formatTime(f.current.ExpiresAt), f.failure.message)
	case f.failure != nil:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, f.failure.reason, f.failure.message
	case f.current != nil:
		ready.Status, ready.Reason = metav1.ConditionFalse, authv1alpha1.TokenExpiredReason
		ready.Message = fmt.Sprintf("The token expired at %s", formatTime(f.current.ExpiresAt))
	default:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionUnknown, authv1alpha1.ProgressingReason, "Obtaining a first token"
	}
	meta.SetStatusCondition(&conn.Status.Conditions, ready)
}

// setReconcilingCondition is True while a transient failure is being retried; absent otherwise.
func setReconcilingCondition(conn *authv1alpha1.MauticConnection, f statusFacts) {
	if f.failure == nil || f.failure.class != mautic.ClassTransient {
		meta.RemoveStatusCondition(&conn.Status.Conditions, authv1alpha1.ReconcilingCondition)
		return
	}
	message := fmt.Sprintf("Attempt %d failed: %s; retrying in %s", conn.Status.FailedAttempts, f.failure.message, f.failure.retryAfter)
	if f.current.valid(f.now) && !f.current.ExpiresAt.IsZero() {
		message += fmt.Sprintf("; the current token stays published until %s", formatTime(f.current.ExpiresAt))
	}
	meta.SetStatusCondition(&conn.Status.Conditions, metav1.Condition{
		Type: authv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, ObservedGeneration: conn.Generation, LastTransitionTime: metav1.NewTime(f.now.Truncate(time.Second)),
		Reason: f.failure.reason, Message: message,
	})
}

// setStalledCondition is True when a person must act; absent otherwise.
func setStalledCondition(conn *authv1alpha1.MauticConnection, f statusFacts) {
	if f.failure == nil || f.failure.class == mautic.ClassTransient {
		meta.RemoveStatusCondition(&conn.Status.Conditions, authv1alpha1.StalledCondition)
		return
	}
	meta.SetStatusCondition(&conn.Status.Conditions, metav1.Condition{
		Type: authv1alpha1.StalledCondition, Status: metav1.ConditionTrue, ObservedGeneration: conn.Generation, LastTransitionTime: metav1.NewTime(f.now.Truncate(time.Second)),
		Reason: f.failure.reason, Message: f.failure.message,
	})
}

// setObservedGeneration records that the status describes this generation, on a clean exit only.
func setObservedGeneration(conn *authv1alpha1.MauticConnection, f statusFacts) {
	if f.clean {
		conn.Status.ObservedGeneration = conn.Generation
	}
}

// readyReason is the Ready reason for a valid token of t's kind.
func readyReason(t *issuedToken) string {
	if t.TokenType == tokenTypeBasic {
		return authv1alpha1.CredentialsVerifiedReason
	}
	return authv1alpha1.TokenValidReason
}

// validityPhrase describes how long t is valid, for messages and events.
func validityPhrase(t *issuedToken) string {
	if t.ExpiresAt.IsZero() {
		return "credentials do not expire"
	}
	return "token valid until " + formatTime(t.ExpiresAt)
}

func capitalised(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// optionalTime returns t as a status time, nil when zero. It is cut to the second, as the API
// server stores it, so that a status computed again compares equal to the one read back.
func optionalTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	return &metav1.Time{Time: t.Truncate(time.Second)}
}
