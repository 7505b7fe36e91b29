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

// refreshTokenExpiresAt is when the stored refresh token would lapse unused (AuthorizationCode);
// zero when unknown or meaningless for the grant.
func (s *scope) refreshTokenExpiresAt() time.Time {
	if s.conn.EffectiveGrant() != authv1alpha1.GrantAuthorizationCode || s.refreshTokenIssuedAt.IsZero() {
		return time.Time{}
	}
	return s.refreshTokenIssuedAt.Add(refreshTokenLifetime(s.conn))
}

// mauticVersion is the Mautic-Version header seen while verifying, "" when not seen.
func (s *scope) mauticVersion() string {
	if s.verified == nil {
		return ""
	}
	return s.verified.MauticVersion
}

// maxMauticVersionBytes is the maxLength of status.mauticVersion.
const maxMauticVersionBytes = 64

// computeStatus writes the whole status of s.conn from the scope. clean is false when the
// reconcile ended on an error that will be retried (an API server error, say): the status then
// does not claim to describe the current generation.
func computeStatus(s *scope, clean bool) {
	conn := s.conn
	status := &conn.Status
	status.TokenSecretName = conn.TokenSecretName()
	if conn.Spec.Suspend {
		setSuspendedConditions(conn, s.now)
		setObservedGeneration(conn, clean)
		return
	}
	setTokenTimes(status, s)
	setFailureCounters(status, s)
	if version := s.mauticVersion(); version != "" && len(version) <= maxMauticVersionBytes {
		status.MauticVersion = version
	}
	switch {
	case s.issuedNow:
		status.LastHandledRefreshRequest = s.refreshRequest
	case s.current != nil && s.current.RefreshRequest != "":
		// The request the current token answered is handled, whatever an older cached status says:
		// a reconcile that follows the operator's own write then computes the status it wrote.
		status.LastHandledRefreshRequest = s.current.RefreshRequest
	}
	setReadyCondition(conn, s)
	setReconcilingCondition(conn, s)
	setStalledCondition(conn, s)
	setObservedGeneration(conn, clean)
}

// setCondition sets a condition that describes conn's current generation, as of now.
func setCondition(conn *authv1alpha1.MauticConnection, now time.Time, conditionType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&conn.Status.Conditions, metav1.Condition{
		Type: conditionType, Status: status, ObservedGeneration: conn.Generation, LastTransitionTime: metav1.NewTime(now.Truncate(time.Second)),
		Reason: reason, Message: message,
	})
}

// setSuspendedConditions keeps the last conditions of a suspended connection, which refreshes
// nothing, until its token expires: then Ready turns False with reason Suspended.
func setSuspendedConditions(conn *authv1alpha1.MauticConnection, now time.Time) {
	meta.RemoveStatusCondition(&conn.Status.Conditions, authv1alpha1.ReconcilingCondition)
	expiresAt := conn.Status.ExpiresAt
	if expiresAt == nil || now.Before(expiresAt.Time) {
		return
	}
	setCondition(conn, now, authv1alpha1.ReadyCondition, metav1.ConditionFalse, authv1alpha1.SuspendedReason, fmt.Sprintf(
		"spec.suspend is true: the token expired at %s and is not refreshed; set spec.suspend to false to resume", formatTime(expiresAt.Time)))
}

// setTokenTimes reports the current token's expiry, renewal and issue times.
func setTokenTimes(status *authv1alpha1.MauticConnectionStatus, s *scope) {
	if s.current == nil {
		return
	}
	status.ExpiresAt = optionalTime(s.current.ExpiresAt)
	status.RenewAt = optionalTime(s.renewAt)
	status.LastRefreshTime = optionalTime(s.current.IssuedAt)
	if expiresAt := s.refreshTokenExpiresAt(); !expiresAt.IsZero() {
		status.RefreshTokenExpiresAt = optionalTime(expiresAt)
	}
}

// setFailureCounters counts consecutive failures and resets them on a new token.
func setFailureCounters(status *authv1alpha1.MauticConnectionStatus, s *scope) {
	switch {
	case s.failure != nil:
		status.FailedAttempts++
		status.LastFailureTime = optionalTime(s.now)
	case s.issuedNow:
		status.FailedAttempts = 0
	}
}

// setReadyCondition is True while a valid token is published and nothing needs a person.
func setReadyCondition(conn *authv1alpha1.MauticConnection, s *scope) {
	status, reason, message := readyCondition(s)
	setCondition(conn, s.now, authv1alpha1.ReadyCondition, status, reason, message)
}

// readyCondition is the status, reason and message of the Ready condition.
func readyCondition(s *scope) (metav1.ConditionStatus, string, string) {
	current, failure := s.current, s.failure
	switch {
	case failure != nil && failure.class != mautic.ClassTransient:
		return metav1.ConditionFalse, failure.reason, failure.message
	case current.valid(s.now):
		message := fmt.Sprintf("%s; next refresh at %s", capitalised(validityPhrase(current)), formatTime(s.renewAt))
		if current.TokenType == authv1alpha1.TokenTypeBasic {
			message = fmt.Sprintf("Credentials verified at %s; next check at %s", formatTime(current.IssuedAt), formatTime(s.renewAt))
		}
		if lifetime := current.ExpiresAt.Sub(current.IssuedAt); !current.ExpiresAt.IsZero() && lifetime < s.minTokenInterval {
			message += fmt.Sprintf("; the server's tokens live %s, less than the %s the operator waits between token "+
				"requests, so the published token is expired part of the time", lifetime, s.minTokenInterval)
		}
		return metav1.ConditionTrue, readyReason(current), message
	case current != nil && failure != nil:
		return metav1.ConditionFalse, authv1alpha1.TokenExpiredReason,
			fmt.Sprintf("The token expired at %s and refreshing failed: %s", formatTime(current.ExpiresAt), failure.message)
	case failure != nil:
		return metav1.ConditionFalse, failure.reason, failure.message
	case current != nil:
		return metav1.ConditionFalse, authv1alpha1.TokenExpiredReason, fmt.Sprintf("The token expired at %s", formatTime(current.ExpiresAt))
	default:
		return metav1.ConditionUnknown, authv1alpha1.ProgressingReason, "Obtaining a first token"
	}
}

// setReconcilingCondition is True while a transient failure is being retried; absent otherwise.
func setReconcilingCondition(conn *authv1alpha1.MauticConnection, s *scope) {
	if s.failure == nil || s.failure.class != mautic.ClassTransient {
		meta.RemoveStatusCondition(&conn.Status.Conditions, authv1alpha1.ReconcilingCondition)
		return
	}
	message := fmt.Sprintf("Attempt %d failed: %s; retrying in %s", conn.Status.FailedAttempts, s.failure.message, s.failure.retryAfter)
	if s.current.valid(s.now) && !s.current.ExpiresAt.IsZero() {
		message += fmt.Sprintf("; the current token stays published until %s", formatTime(s.current.ExpiresAt))
	}
	setCondition(conn, s.now, authv1alpha1.ReconcilingCondition, metav1.ConditionTrue, s.failure.reason, message)
}

// setStalledCondition is True when a person must act; absent otherwise.
func setStalledCondition(conn *authv1alpha1.MauticConnection, s *scope) {
	if !s.stalled() {
		meta.RemoveStatusCondition(&conn.Status.Conditions, authv1alpha1.StalledCondition)
		return
	}
	setCondition(conn, s.now, authv1alpha1.StalledCondition, metav1.ConditionTrue, s.failure.reason, s.failure.message)
}

// setObservedGeneration records that the status describes this generation, on a clean exit only.
func setObservedGeneration(conn *authv1alpha1.MauticConnection, clean bool) {
	if clean {
		conn.Status.ObservedGeneration = conn.Generation
	}
}

// readyReason is the Ready reason for a valid token of t's kind.
func readyReason(t *issuedToken) string {
	if t.TokenType == authv1alpha1.TokenTypeBasic {
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
