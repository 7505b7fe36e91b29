package controller_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// A configuration failure fixed on Mautic's side heals by itself: nobody edits Kubernetes objects
// (in GitOps the spec does not change), so the connection looks again on a slow timer that backs
// off, and says when in its message. Here the timer starts at 1s instead of 45s.
func TestConfigurationFixedInMauticHealsByItself(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		grant  authv1alpha1.Grant
		break_ func(e *env)
		fix    func(e *env)
		reason string
	}{
		{
			name:   "the API enabled",
			break_: func(e *env) { e.Mautic.SetAPIEnabled(false) },
			fix:    func(e *env) { e.Mautic.SetAPIEnabled(true) },
			reason: authv1alpha1.APIDisabledReason,
		},
		{
			name:   "Basic auth enabled",
			grant:  authv1alpha1.GrantBasic,
			break_: func(e *env) { e.Mautic.AddUser("api-user", "s3cret pass") },
			fix:    func(e *env) { e.Mautic.SetBasicAuthEnabled(true) },
			reason: authv1alpha1.BasicAuthDisabledReason,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			e := newEnv(t)
			e.restartManager(nil, func(o *operator.Options) { o.ConfigurationRetry = time.Second })
			tc.break_(e)
			conn := e.newConnection()
			if tc.grant == authv1alpha1.GrantBasic {
				e.createCredentials(map[string]string{authv1alpha1.UsernameKey: "api-user", authv1alpha1.PasswordKey: "s3cret pass"})
				conn.Spec.Grant = tc.grant
			} else {
				e.createCredentials(e.clientCredentials())
			}
			e.createConnection(conn)

			conn = e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, tc.reason)
			g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(MatchRegexp(`\(next attempt at \d{4}-\d\d-\d\dT`))
			// Attempts at 0s, 1s, 3s and 7s: never a hot loop.
			start := e.Mautic.TokenRequests() + e.Mautic.APIRequests()
			time.Sleep(2500 * time.Millisecond)
			g.Expect(e.Mautic.TokenRequests()+e.Mautic.APIRequests()-start).To(BeNumerically("<=", 2), "a slow timer, not a loop")

			tc.fix(e)
			readyReason := authv1alpha1.TokenValidReason
			if tc.grant == authv1alpha1.GrantBasic {
				readyReason = authv1alpha1.CredentialsVerifiedReason
			}
			e.waitReady(readyReason)
			g.Expect(condition(e.connection(), authv1alpha1.StalledCondition)).To(BeNil())
		})
	}
}
