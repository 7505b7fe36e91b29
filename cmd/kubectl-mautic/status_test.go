package main

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// setStatus writes status onto conn through the status subresource, as the operator would.
func (f *fixture) setStatus(conn *authv1alpha1.MauticConnection, mutate func(*authv1alpha1.MauticConnectionStatus)) {
	f.t.Helper()
	g := NewWithT(f.t)
	mutate(&conn.Status)
	g.Expect(k8sClient.Status().Update(f.ctx, conn)).To(Succeed())
}

// condition builds a condition for setStatus.
func condition(conditionType string, status metav1.ConditionStatus, reason, message string, at time.Time) metav1.Condition {
	return metav1.Condition{Type: conditionType, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(at)}
}

func TestStatus(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }

	t.Run("Ready", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.clock = clocktesting.NewFakePassiveClock(now)
		conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		f.setStatus(conn, func(s *authv1alpha1.MauticConnectionStatus) {
			s.ObservedGeneration = conn.Generation
			meta.SetStatusCondition(&s.Conditions, condition(authv1alpha1.ReadyCondition, metav1.ConditionTrue,
				authv1alpha1.TokenValidReason, "Token valid until 2026-05-01T10:42:00Z", now))
			meta.SetStatusCondition(&s.Conditions, condition(authv1alpha1.ReconcilingCondition, metav1.ConditionFalse,
				authv1alpha1.TokenValidReason, "", now))
			meta.SetStatusCondition(&s.Conditions, condition(authv1alpha1.StalledCondition, metav1.ConditionFalse,
				authv1alpha1.TokenValidReason, "", now))
			s.TokenSecretName = "crm-token"
			s.ExpiresAt = at(42 * time.Minute)
			s.RenewAt = at(28 * time.Minute)
			s.RefreshTokenExpiresAt = at(14 * 24 * time.Hour)
			s.LastRefreshTime = at(-18 * time.Minute)
			s.MauticVersion = "5.2.1"
		})

		stdout, stderr, code := f.run("status", "crm", "-n", f.ns)
		g.Expect(code).To(Equal(exitOK), stderr)
		g.Expect(stdout).To(haveLine("MauticConnection", f.ns+"/crm"))
		g.Expect(stdout).To(haveLine("Ready", "True (TokenValid): Token valid until 2026-05-01T10:42:00Z"))
		g.Expect(stdout).To(haveLine("Token Secret", "crm-token"))
		g.Expect(stdout).To(haveLine("Token expires", "2026-05-01T10:42:00Z (in 42m)"))
		g.Expect(stdout).To(haveLine("Next refresh", "2026-05-01T10:28:00Z (in 28m)"))
		g.Expect(stdout).To(haveLine("Refresh token expires", "2026-05-15T10:00:00Z (in 14d)"))
		g.Expect(stdout).To(haveLine("Last refresh", "2026-05-01T09:42:00Z (18m ago)"))
		g.Expect(stdout).To(haveLine("Failed attempts", "0"))
		g.Expect(stdout).To(haveLine("Mautic version", "5.2.1"))
		g.Expect(stdout).NotTo(ContainSubstring("Fix:"))
		g.Expect(stdout).NotTo(ContainSubstring("kubectl mautic authorize"))
		g.Expect(stdout).NotTo(ContainSubstring("Stalled"))
	})

	t.Run("Stalled, reauthorization required", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.clock = clocktesting.NewFakePassiveClock(now)
		conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		message := fmt.Sprintf(`token endpoint answered HTTP 400 invalid_grant: "Invalid refresh token": authorize again with `+
			"`kubectl mautic authorize crm -n %s`", f.ns)
		f.setStatus(conn, func(s *authv1alpha1.MauticConnectionStatus) {
			s.ObservedGeneration = conn.Generation
			meta.SetStatusCondition(&s.Conditions, condition(authv1alpha1.ReadyCondition, metav1.ConditionFalse,
				authv1alpha1.ReauthorizationRequiredReason, message, now))
			meta.SetStatusCondition(&s.Conditions, condition(authv1alpha1.StalledCondition, metav1.ConditionTrue,
				authv1alpha1.ReauthorizationRequiredReason, message, now))
			s.TokenSecretName = "crm-token"
			s.ExpiresAt = at(-5 * time.Minute)
			s.FailedAttempts = 3
			s.LastFailureTime = at(-2 * time.Minute)
		})

		stdout, stderr, code := f.run("status", "crm", "-n", f.ns)
		g.Expect(code).To(Equal(exitOK), stderr)
		g.Expect(stdout).To(haveLine("Ready", "False (ReauthorizationRequired): "+message))
		g.Expect(stdout).To(haveLine("Stalled", "True (ReauthorizationRequired)"))
		g.Expect(stdout).To(haveLine("Token expires", "2026-05-01T09:55:00Z (5m ago)"))
		g.Expect(stdout).To(haveLine("Failed attempts", "3, last failure 2026-05-01T09:58:00Z (2m ago)"))
		g.Expect(stdout).To(haveLine("Mautic version", "unknown"))
		g.Expect(stdout).To(ContainSubstring("\nFix: " + message + "\n"))
		g.Expect(stdout).To(HaveSuffix(fmt.Sprintf("\nRun: kubectl mautic authorize crm -n %s\n", f.ns)))
	})

	t.Run("no status yet, pending refresh request", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.clock = clocktesting.NewFakePassiveClock(now)
		f.createConnection("crm", authv1alpha1.GrantClientCredentials, func(c *authv1alpha1.MauticConnection) {
			c.Annotations = map[string]string{authv1alpha1.RefreshRequestedAtAnnotation: "2026-05-01T09:59:00Z"}
		})
		stdout, stderr, code := f.run("status", "crm", "-n", f.ns)
		g.Expect(code).To(Equal(exitOK), stderr)
		g.Expect(stdout).To(MatchRegexp(`(?m)^Ready:\s+Unknown \(no status yet: is mautic-operator running`))
		g.Expect(stdout).To(haveLine("Token Secret", "crm-token (not written yet)"))
		g.Expect(stdout).To(haveLine("Refresh requested", "2026-05-01T09:59:00Z (not handled yet)"))
		g.Expect(stdout).NotTo(ContainSubstring("Refresh token expires"), "ClientCredentials has no refresh token")
	})

	t.Run("not found", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		_, stderr, code := f.run("status", "nope", "-n", f.ns)
		g.Expect(code).To(Equal(exitFailed))
		g.Expect(stderr).To(Equal(fmt.Sprintf("error: MauticConnection %s/nope not found: check the name and the namespace (-n)\n", f.ns)))
	})
}

// haveLine matches a "Label:   value" line of the status summary, whatever the column width.
func haveLine(label, value string) types.GomegaMatcher {
	return MatchRegexp(`(?m)^` + regexp.QuoteMeta(label+":") + ` +` + regexp.QuoteMeta(value) + `$`)
}

// Fields a tenant or a Mautic server wrote are printed quoted when they hold control characters,
// and cut when long, so that they cannot rewrite the terminal.
func TestUntrusted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  string
	}{
		{name: "plain text", value: "5.2.1", want: "5.2.1"},
		{name: "a message with spaces and quotes", value: `Mautic answered HTTP 400: "nope"`, want: `Mautic answered HTTP 400: "nope"`},
		{name: "terminal escape", value: "5.2.1\x1b[2J", want: `"5.2.1\x1b[2J"`},
		{name: "a fake line", value: "https://m.example.com\nReady:\tTrue", want: `"https://m.example.com\nReady:\tTrue"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			NewWithT(t).Expect(untrusted(tc.value)).To(Equal(tc.want))
		})
	}
	long := untrusted(string(make([]byte, 200<<10)))
	NewWithT(t).Expect(len(long)).To(BeNumerically("<", 5*maxUntrustedBytes), "200 KB is cut")
}
