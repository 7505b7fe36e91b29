package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// statusNow is the reconcile's clock reading: ten minutes after testIssuedAt.
var statusNow = testIssuedAt.Add(10 * time.Minute)

// Fixtures of the status tests: a one hour token issued at testIssuedAt and its renewal time.
var (
	statusExpiresAt = testIssuedAt.Add(time.Hour)
	statusRenewAt   = testIssuedAt.Add(40 * time.Minute)
)

const (
	transientMessage     = "Mautic did not answer usably, retrying: Mautic token endpoint answered HTTP 503"
	configurationMessage = "Mautic token endpoint answered HTTP 401 invalid_client: check client_id and client_secret in Secret sales/mautic-api"
	previousGeneration   = 2
)

func transientFailure() *failure {
	return &failure{class: mautic.ClassTransient, reason: authv1alpha1.RefreshFailedReason, message: transientMessage, retryAfter: 20 * time.Second}
}

func configurationFailure() *failure {
	return &failure{class: mautic.ClassConfiguration, reason: authv1alpha1.InvalidClientReason, message: configurationMessage}
}

// expiredBearer is a one hour token that expired ten minutes before statusNow.
func expiredBearer() *issuedToken {
	return bearerToken(statusNow.Add(-70*time.Minute), time.Hour)
}

// priorStatus is the status a previous reconcile left: generation 2 described, a token published,
// two failed attempts and all three conditions present, so that removals and resets show.
func priorStatus() authv1alpha1.MauticConnectionStatus {
	old := metav1.NewTime(testIssuedAt.Add(-time.Hour))
	return authv1alpha1.MauticConnectionStatus{
		ObservedGeneration:        previousGeneration,
		TokenSecretName:           "stale-name",
		FailedAttempts:            2,
		LastFailureTime:           &old,
		LastHandledRefreshRequest: "earlier-request",
		Conditions: []metav1.Condition{
			{Type: authv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: authv1alpha1.TokenValidReason,
				Message: "before", ObservedGeneration: previousGeneration, LastTransitionTime: old},
			{Type: authv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: authv1alpha1.RefreshFailedReason,
				Message: "before", ObservedGeneration: previousGeneration, LastTransitionTime: old},
			{Type: authv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: authv1alpha1.InvalidClientReason,
				Message: "before", ObservedGeneration: previousGeneration, LastTransitionTime: old},
		},
	}
}

// wantCondition is the expected status, reason and message fragments of a condition; a nil
// *wantCondition means the condition is absent.
type wantCondition struct {
	status  metav1.ConditionStatus
	reason  string
	message []string
	// notInMessage are fragments that must not appear.
	notInMessage []string
}

func expectCondition(g Gomega, conn *authv1alpha1.MauticConnection, conditionType string, want *wantCondition) {
	got := meta.FindStatusCondition(conn.Status.Conditions, conditionType)
	if want == nil {
		g.Expect(got).To(BeNil(), "condition %s should be absent", conditionType)
		return
	}
	g.Expect(got).NotTo(BeNil(), "condition %s", conditionType)
	g.Expect(got.Status).To(Equal(want.status), "condition %s: %s", conditionType, got.Message)
	g.Expect(got.Reason).To(Equal(want.reason), "condition %s: %s", conditionType, got.Message)
	for _, fragment := range want.message {
		g.Expect(got.Message).To(ContainSubstring(fragment), "condition %s", conditionType)
	}
	for _, fragment := range want.notInMessage {
		g.Expect(got.Message).NotTo(ContainSubstring(fragment), "condition %s", conditionType)
	}
	g.Expect(got.ObservedGeneration).To(Equal(conn.Generation), "condition %s", conditionType)
}

func TestComputeStatus(t *testing.T) {
	t.Parallel()
	at := func(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

	tests := []struct {
		name  string
		facts scope
		// clean is false for a reconcile that ended on an error to be retried.
		clean bool
		// fresh starts from an empty status instead of priorStatus.
		fresh bool

		ready, reconciling, stalled *wantCondition
		failedAttempts              int32
		lastFailureTime             *metav1.Time
		observedGeneration          int64
		expiresAt, renewAt          *metav1.Time
		lastRefreshTime             *metav1.Time
		lastHandledRefreshRequest   string
		mauticVersion               string
	}{
		{
			name:  "fresh valid bearer token",
			fresh: true,
			clean: true, facts: scope{now: statusNow, current: bearerToken(testIssuedAt, time.Hour), renewAt: statusRenewAt},
			ready: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.TokenValidReason,
				message: []string{"Token valid until 2025-03-01T13:00:00Z; next refresh at 2025-03-01T12:40:00Z"}},
			observedGeneration: 3,
			expiresAt:          at(statusExpiresAt), renewAt: at(statusRenewAt), lastRefreshTime: at(testIssuedAt),
		},
		{
			name:  "token issued now after failures",
			clean: true, facts: scope{now: testIssuedAt, current: bearerToken(testIssuedAt, time.Hour), renewAt: statusRenewAt,
				issuedNow: true, verified: &mautic.VerifyResult{MauticVersion: "5.2.1"}, refreshRequest: "2025-03-01T11:59:00Z"},
			ready:              &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.TokenValidReason},
			failedAttempts:     0,
			lastFailureTime:    at(testIssuedAt.Add(-time.Hour)),
			observedGeneration: 3,
			expiresAt:          at(statusExpiresAt), renewAt: at(statusRenewAt), lastRefreshTime: at(testIssuedAt),
			lastHandledRefreshRequest: "2025-03-01T11:59:00Z",
			mauticVersion:             "5.2.1",
		},
		{
			name:  "a refresh request is only recorded when a token was issued",
			clean: true, facts: scope{now: statusNow, current: bearerToken(testIssuedAt, time.Hour), renewAt: statusRenewAt,
				refreshRequest: "2025-03-01T12:05:00Z"},
			ready:              &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.TokenValidReason},
			failedAttempts:     2,
			lastFailureTime:    at(testIssuedAt.Add(-time.Hour)),
			observedGeneration: 3,
			expiresAt:          at(statusExpiresAt), renewAt: at(statusRenewAt), lastRefreshTime: at(testIssuedAt),
			lastHandledRefreshRequest: "earlier-request",
		},
		{
			name:  "basic credentials verified",
			fresh: true,
			clean: true, facts: scope{now: statusNow, current: basicToken(testIssuedAt), renewAt: testIssuedAt.Add(time.Hour),
				issuedNow: true, verified: &mautic.VerifyResult{MauticVersion: "4.4.13"}},
			ready: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.CredentialsVerifiedReason,
				message: []string{"Credentials verified at 2025-03-01T12:00:00Z; next check at 2025-03-01T13:00:00Z"}},
			observedGeneration: 3,
			renewAt:            at(testIssuedAt.Add(time.Hour)), lastRefreshTime: at(testIssuedAt),
			mauticVersion: "4.4.13",
		},
		{
			name:  "transient failure with a valid token",
			clean: true, facts: scope{now: statusNow, current: bearerToken(testIssuedAt, time.Hour), renewAt: statusRenewAt,
				failure: transientFailure()},
			ready: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.TokenValidReason},
			reconciling: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.RefreshFailedReason, message: []string{
				"Attempt 3 failed: " + transientMessage, "retrying in 20s",
				"the current token stays published until 2025-03-01T13:00:00Z",
			}},
			failedAttempts:     3,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
			expiresAt:          at(statusExpiresAt), renewAt: at(statusRenewAt), lastRefreshTime: at(testIssuedAt),
			lastHandledRefreshRequest: "earlier-request",
		},
		{
			name:  "transient failure with verified basic credentials",
			clean: true, facts: scope{now: statusNow, current: basicToken(testIssuedAt), renewAt: testIssuedAt.Add(time.Hour),
				failure: transientFailure()},
			ready: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.CredentialsVerifiedReason},
			reconciling: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.RefreshFailedReason,
				message: []string{"Attempt 3 failed"}, notInMessage: []string{"stays published"}},
			failedAttempts:     3,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
			renewAt:            at(testIssuedAt.Add(time.Hour)), lastRefreshTime: at(testIssuedAt),
			lastHandledRefreshRequest: "earlier-request",
		},
		{
			name:  "transient failure with an expired token",
			clean: true, facts: scope{now: statusNow, current: expiredBearer(), renewAt: statusNow.Add(-30 * time.Minute),
				failure: transientFailure()},
			ready: &wantCondition{status: metav1.ConditionFalse, reason: authv1alpha1.TokenExpiredReason,
				message: []string{"The token expired at 2025-03-01T12:00:00Z and refreshing failed: " + transientMessage}},
			reconciling: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.RefreshFailedReason,
				message: []string{"Attempt 3 failed"}, notInMessage: []string{"stays published"}},
			failedAttempts:     3,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
			expiresAt:          at(statusNow.Add(-10 * time.Minute)), renewAt: at(statusNow.Add(-30 * time.Minute)),
			lastRefreshTime:           at(statusNow.Add(-70 * time.Minute)),
			lastHandledRefreshRequest: "earlier-request",
		},
		{
			name:  "first transient failure without a token",
			fresh: true,
			clean: true, facts: scope{now: statusNow, failure: transientFailure()},
			ready: &wantCondition{status: metav1.ConditionFalse, reason: authv1alpha1.RefreshFailedReason,
				message: []string{transientMessage}},
			reconciling: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.RefreshFailedReason,
				message: []string{"Attempt 1 failed"}, notInMessage: []string{"stays published"}},
			failedAttempts:     1,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
		},
		{
			name:  "configuration failure with a valid token",
			clean: true, facts: scope{now: statusNow, current: bearerToken(testIssuedAt, time.Hour), renewAt: statusRenewAt,
				failure: configurationFailure()},
			ready: &wantCondition{status: metav1.ConditionFalse, reason: authv1alpha1.InvalidClientReason,
				message: []string{configurationMessage}},
			stalled: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.InvalidClientReason,
				message: []string{configurationMessage}},
			failedAttempts:     3,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
			expiresAt:          at(statusExpiresAt), renewAt: at(statusRenewAt), lastRefreshTime: at(testIssuedAt),
			lastHandledRefreshRequest: "earlier-request",
		},
		{
			name:  "configuration failure without a token",
			fresh: true,
			clean: true, facts: scope{now: statusNow, failure: &failure{class: mautic.ClassConfiguration,
				reason: authv1alpha1.CredentialsKeyMissingReason, message: "credentials Secret sales/mautic-api has no client_secret"}},
			ready: &wantCondition{status: metav1.ConditionFalse, reason: authv1alpha1.CredentialsKeyMissingReason,
				message: []string{"has no client_secret"}},
			stalled: &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.CredentialsKeyMissingReason,
				message: []string{"has no client_secret"}},
			failedAttempts:     1,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
		},
		{
			name:  "reauthorization failure stalls like a configuration failure",
			fresh: true,
			clean: true, facts: scope{now: statusNow, failure: &failure{class: mautic.ClassReauthorization,
				reason: authv1alpha1.RequestRejectedReason, message: "invalid_grant"}},
			ready:              &wantCondition{status: metav1.ConditionFalse, reason: authv1alpha1.RequestRejectedReason},
			stalled:            &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.RequestRejectedReason},
			failedAttempts:     1,
			lastFailureTime:    at(statusNow),
			observedGeneration: 3,
		},
		{
			name:  "expired token and nothing attempted",
			clean: true, facts: scope{now: statusNow, current: expiredBearer(),
				renewAt: statusNow.Add(-30 * time.Minute)},
			ready: &wantCondition{status: metav1.ConditionFalse, reason: authv1alpha1.TokenExpiredReason,
				message: []string{"The token expired at 2025-03-01T12:00:00Z"}, notInMessage: []string{"refreshing failed"}},
			failedAttempts:     2,
			lastFailureTime:    at(testIssuedAt.Add(-time.Hour)),
			observedGeneration: 3,
			expiresAt:          at(statusNow.Add(-10 * time.Minute)), renewAt: at(statusNow.Add(-30 * time.Minute)),
			lastRefreshTime:           at(statusNow.Add(-70 * time.Minute)),
			lastHandledRefreshRequest: "earlier-request",
		},
		{
			name:  "not clean: no token yet, generation not claimed",
			fresh: true,
			clean: false, facts: scope{now: statusNow},
			ready: &wantCondition{status: metav1.ConditionUnknown, reason: authv1alpha1.ProgressingReason,
				message: []string{"Obtaining a first token"}},
			observedGeneration: 0,
		},
		{
			name:  "not clean: valid token, previous generation kept",
			clean: false, facts: scope{now: statusNow, current: bearerToken(testIssuedAt, time.Hour),
				renewAt: statusRenewAt},
			ready:              &wantCondition{status: metav1.ConditionTrue, reason: authv1alpha1.TokenValidReason},
			failedAttempts:     2,
			lastFailureTime:    at(testIssuedAt.Add(-time.Hour)),
			observedGeneration: previousGeneration,
			expiresAt:          at(statusExpiresAt), renewAt: at(statusRenewAt), lastRefreshTime: at(testIssuedAt),
			lastHandledRefreshRequest: "earlier-request",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			conn := testConnection()
			if !tc.fresh {
				conn.Status = priorStatus()
			}

			s := tc.facts
			s.conn = conn
			computeStatus(&s, tc.clean)

			status := conn.Status
			g.Expect(status.TokenSecretName).To(Equal("crm-token"))
			expectCondition(g, conn, authv1alpha1.ReadyCondition, tc.ready)
			expectCondition(g, conn, authv1alpha1.ReconcilingCondition, tc.reconciling)
			expectCondition(g, conn, authv1alpha1.StalledCondition, tc.stalled)
			g.Expect(status.Conditions).To(HaveLen(countPresent(tc.ready, tc.reconciling, tc.stalled)))
			g.Expect(status.FailedAttempts).To(Equal(tc.failedAttempts))
			g.Expect(status.LastFailureTime).To(Equal(tc.lastFailureTime))
			g.Expect(status.ObservedGeneration).To(Equal(tc.observedGeneration))
			g.Expect(status.ExpiresAt).To(Equal(tc.expiresAt))
			g.Expect(status.RenewAt).To(Equal(tc.renewAt))
			g.Expect(status.LastRefreshTime).To(Equal(tc.lastRefreshTime))
			g.Expect(status.LastHandledRefreshRequest).To(Equal(tc.lastHandledRefreshRequest))
			g.Expect(status.MauticVersion).To(Equal(tc.mauticVersion))
		})
	}
}

func countPresent(conditions ...*wantCondition) int {
	n := 0
	for _, c := range conditions {
		if c != nil {
			n++
		}
	}
	return n
}

func TestComputeStatusWhileSuspended(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		clean              bool
		facts              scope
		observedGeneration int64
	}{
		{"clean", true, scope{now: statusNow}, 3},
		// Whatever else the facts say, a suspended connection reports none of it.
		{"with a failure and a new token", true, scope{now: statusNow, current: bearerToken(statusNow, time.Hour), renewAt: statusNow.Add(40 * time.Minute), issuedNow: true,
			failure: configurationFailure(), verified: &mautic.VerifyResult{MauticVersion: "5.0.0"}, refreshRequest: "now"}, 3},
		{"not clean", false, scope{now: statusNow}, previousGeneration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			conn := testConnection()
			conn.Spec.Suspend = true
			conn.Status = priorStatus()
			want := priorStatus()
			s := tc.facts
			s.conn = conn

			computeStatus(&s, tc.clean)

			g.Expect(meta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReconcilingCondition)).To(BeNil())
			g.Expect(conn.Status.ObservedGeneration).To(Equal(tc.observedGeneration))
			g.Expect(conn.Status.TokenSecretName).To(Equal("crm-token"))
			// Everything else is as the previous reconcile left it, conditions included.
			want.ObservedGeneration = conn.Status.ObservedGeneration
			want.TokenSecretName = "crm-token"
			want.Conditions = []metav1.Condition{want.Conditions[0], want.Conditions[2]}
			g.Expect(conn.Status).To(Equal(want))
		})
	}
}

func TestComputeStatusConditionsCarryTheGeneration(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := testConnection()
	conn.Generation = 7
	conn.Status = priorStatus()

	computeStatus(&scope{conn: conn, now: statusNow, current: bearerToken(testIssuedAt, time.Hour),
		renewAt: statusRenewAt, failure: configurationFailure()}, true)

	g.Expect(conn.Status.Conditions).NotTo(BeEmpty())
	for _, c := range conn.Status.Conditions {
		g.Expect(c.ObservedGeneration).To(BeEquivalentTo(7), "condition %s", c.Type)
	}
	g.Expect(conn.Status.ObservedGeneration).To(BeEquivalentTo(7))
}

func TestComputeStatusUsesTheTokenSecretName(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := testConnection()
	conn.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Name: "mautic-bearer"}

	computeStatus(&scope{conn: conn, now: statusNow}, true)

	g.Expect(conn.Status.TokenSecretName).To(Equal("mautic-bearer"))
}

func TestSetFailureCounters(t *testing.T) {
	t.Parallel()
	earlier := metav1.NewTime(statusNow.Add(-time.Hour))
	tests := []struct {
		name            string
		before          int32
		facts           scope
		want            int32
		lastFailureTime *metav1.Time
	}{
		{"first failure", 0, scope{now: statusNow, failure: transientFailure()}, 1, &metav1.Time{Time: statusNow}},
		{"another failure", 4, scope{now: statusNow, failure: configurationFailure()}, 5, &metav1.Time{Time: statusNow}},
		{"a new token resets the count", 4, scope{now: statusNow, issuedNow: true}, 0, &earlier},
		{"nothing happened", 4, scope{now: statusNow}, 4, &earlier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			status := &authv1alpha1.MauticConnectionStatus{FailedAttempts: tc.before, LastFailureTime: earlier.DeepCopy()}

			setFailureCounters(status, &tc.facts)

			g.Expect(status.FailedAttempts).To(Equal(tc.want))
			g.Expect(status.LastFailureTime).To(Equal(tc.lastFailureTime))
		})
	}
}

func TestSetObservedGeneration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		clean bool
		want  int64
	}{
		{"clean", true, 3},
		{"not clean", false, previousGeneration},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			conn := testConnection()
			conn.Status.ObservedGeneration = previousGeneration

			setObservedGeneration(conn, tc.clean)

			g.Expect(conn.Status.ObservedGeneration).To(Equal(tc.want))
		})
	}
}

func TestSetReconcilingAndStalledConditions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		failure              *failure
		reconciling, stalled bool
	}{
		{"no failure removes both", nil, false, false},
		{"transient", transientFailure(), true, false},
		{"configuration", configurationFailure(), false, true},
		{"reauthorization", &failure{class: mautic.ClassReauthorization, reason: authv1alpha1.RequestRejectedReason}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			conn := testConnection()
			conn.Status = priorStatus()
			f := scope{conn: conn, now: statusNow, current: bearerToken(testIssuedAt, time.Hour), failure: tc.failure}

			setReconcilingCondition(conn, &f)
			setStalledCondition(conn, &f)

			g.Expect(meta.IsStatusConditionTrue(conn.Status.Conditions, authv1alpha1.ReconcilingCondition)).To(Equal(tc.reconciling))
			g.Expect(meta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReconcilingCondition) != nil).To(Equal(tc.reconciling))
			g.Expect(meta.IsStatusConditionTrue(conn.Status.Conditions, authv1alpha1.StalledCondition)).To(Equal(tc.stalled))
			g.Expect(meta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition) != nil).To(Equal(tc.stalled))
			// Ready is not theirs to touch.
			g.Expect(meta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReadyCondition)).To(Equal(&priorStatus().Conditions[0]))
		})
	}
}

func TestSetReadyConditionKeepsTransitionTimeWhileUnchanged(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	conn := testConnection()
	conn.Status = priorStatus()
	before := conn.Status.Conditions[0].LastTransitionTime

	setReadyCondition(conn, &scope{conn: conn, now: statusNow, current: bearerToken(testIssuedAt, time.Hour), renewAt: statusRenewAt})

	ready := meta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(ready.LastTransitionTime).To(Equal(before))
	g.Expect(ready.ObservedGeneration).To(BeEquivalentTo(3))
}
