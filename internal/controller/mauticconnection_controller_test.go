package controller_test

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// A connection becomes Ready with a token Secret that Mautic's API accepts, and the
// status reports the lifetime the server granted.
func TestClientCredentialsBecomeReadyWithAWorkingToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(45 * time.Minute)
	e.createCredentials(e.clientCredentials())
	conn := e.newConnection()
	conn.Spec.Verify = &authv1alpha1.VerifySpec{Path: "/api/users/self"}
	conn.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Template: &authv1alpha1.SecretTemplate{
		Labels: map[string]string{"team": "growth"}, Annotations: map[string]string{"reloader/match": "true"},
	}}
	e.createConnection(conn)

	conn, secret := e.waitReady(authv1alpha1.TokenValidReason)

	g.Expect(e.apiStatus(string(secret.Data[authv1alpha1.AuthorizationKey]))).To(Equal(http.StatusOK))
	g.Expect(secret.Data).To(HaveKey(authv1alpha1.AccessTokenKey))
	g.Expect(string(secret.Data[authv1alpha1.AuthorizationKey])).To(Equal("Bearer " + string(secret.Data[authv1alpha1.AccessTokenKey])))
	g.Expect(string(secret.Data[authv1alpha1.TokenTypeKey])).To(Equal("bearer"))
	g.Expect(string(secret.Data[authv1alpha1.URLKey])).To(Equal(e.Mautic.URL()), "url is normalised: no trailing slash")
	g.Expect(string(secret.Data[authv1alpha1.ExpiresAtKey])).To(Equal(conn.Status.ExpiresAt.UTC().Format(time.RFC3339)))
	g.Expect(secret.Labels).To(HaveKeyWithValue(authv1alpha1.ManagedByLabel, authv1alpha1.ManagedByValue))
	g.Expect(secret.Labels).To(HaveKeyWithValue(authv1alpha1.ConnectionLabel, testenv.ConnectionName))
	g.Expect(secret.Labels).To(HaveKeyWithValue("team", "growth"))
	g.Expect(secret.Annotations).To(HaveKeyWithValue("reloader/match", "true"))
	g.Expect(metav1.IsControlledBy(secret, conn)).To(BeTrue(), "owner reference to the connection")

	lifetime := conn.Status.ExpiresAt.Sub(conn.Status.LastRefreshTime.Time)
	g.Expect(lifetime).To(BeNumerically("~", 45*time.Minute, 2*time.Second))
	g.Expect(conn.Status.RenewAt.Time).To(BeTemporally("<", conn.Status.ExpiresAt.Time))
	g.Expect(conn.Status.TokenSecretName).To(Equal(testenv.TokenSecretName))
	g.Expect(conn.Status.MauticVersion).To(Equal(mautictest.DefaultMauticVersion))
	g.Expect(condition(conn, authv1alpha1.StalledCondition)).To(BeNil())
	g.Expect(condition(conn, authv1alpha1.ReconcilingCondition)).To(BeNil())
	g.Expect(e.Mautic.TokenRequests()).To(Equal(1))
}

// With a short lifetime, a new token is published before the old one expires, every
// time, with one token request per cycle.
func TestRefreshesBeforeExpiryEveryCycle(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(4 * time.Second)
	e.createCredentials(e.clientCredentials())
	conn := e.newConnection()
	// Half the lifetime as margin: the lifetimes here are seconds, and CI machines are busy.
	conn.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBeforePercentage: ptr.To[int32](50)}
	e.createConnection(conn)
	e.waitReady(authv1alpha1.TokenValidReason)

	const cycles = 4
	seen := map[string]bool{}
	deadline := time.Now().Add(cycles*4*time.Second + 2*time.Second)
	for len(seen) <= cycles && time.Now().Before(deadline) {
		secret := e.tokenSecret()
		g.Expect(secret).NotTo(BeNil())
		published := accessToken(secret)
		// Every token ever published must be valid at Mautic at every moment it is published.
		g.Expect(e.Mautic.AccessTokenValid(published)).To(BeTrue(), "the published token expired before it was replaced")
		seen[published] = true
		time.Sleep(100 * time.Millisecond)
	}
	g.Expect(len(seen)).To(BeNumerically(">", cycles), "tokens published")
	g.Expect(e.Mautic.TokenRequests()).To(BeNumerically("<=", len(seen)+1), "one token request per cycle")
	g.Expect(e.connection().Status.FailedAttempts).To(BeZero())
}

// A restarted manager trusts the valid token it finds and asks Mautic for nothing.
func TestRestartWithValidTokensMakesNoTokenRequests(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createClientCredentialsConnection()
	_, before := e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(e.Mautic.TokenRequests()).To(Equal(1))

	e.startManager()
	// The new manager reconciles the connection on start; a manual poke makes sure it ran at least once more.
	e.updateConnection(func(c *authv1alpha1.MauticConnection) {
		c.Annotations = map[string]string{"example.com/poke": "1"}
	})
	g.Consistently(func(g Gomega) {
		g.Expect(e.Mautic.TokenRequests()).To(Equal(1))
		g.Expect(accessToken(e.tokenSecret())).To(Equal(accessToken(before)))
	}).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	e.waitReady(authv1alpha1.TokenValidReason)
}

// A new client secret publishes a token obtained with it, promptly.
func TestChangedCredentialsPublishANewToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createClientCredentialsConnection()
	_, before := e.waitReady(authv1alpha1.TokenValidReason)

	e.App.Secret = "rotated-" + testenv.RandomSuffix()
	e.Mautic.SetClientSecret(e.App.ID, e.App.Secret)
	e.updateCredentials(e.clientCredentials())

	g.Eventually(func(g Gomega) {
		g.Expect(accessToken(e.tokenSecret())).NotTo(Equal(accessToken(before)))
	}).WithTimeout(10 * time.Second).WithPolling(poll).Should(Succeed())
	_, after := e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(e.apiStatus(string(after.Data[authv1alpha1.AuthorizationKey]))).To(Equal(http.StatusOK))
	g.Expect(e.Mautic.TokenRequests()).To(Equal(2))
}

// A deleted or edited token Secret is restored from the current token at once, with
// no token request; a template change relabels it without a new token.
func TestTokenSecretIsRepairedWithoutANewToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createClientCredentialsConnection()
	_, original := e.waitReady(authv1alpha1.TokenValidReason)
	restored := func(g Gomega) {
		secret := e.tokenSecret()
		g.Expect(secret).NotTo(BeNil())
		g.Expect(secret.Data).To(Equal(original.Data))
		g.Expect(secret.Labels).To(HaveKeyWithValue(authv1alpha1.ManagedByLabel, authv1alpha1.ManagedByValue))
	}

	g.Expect(k8sClient.Delete(e.Ctx, original)).To(Succeed())
	g.Eventually(restored).WithTimeout(10 * time.Second).WithPolling(poll).Should(Succeed())

	edited := e.tokenSecret()
	edited.Data[authv1alpha1.AuthorizationKey] = []byte("Bearer tampered")
	delete(edited.Data, authv1alpha1.URLKey)
	g.Expect(k8sClient.Update(e.Ctx, edited)).To(Succeed())
	g.Eventually(restored).WithTimeout(10 * time.Second).WithPolling(poll).Should(Succeed())

	e.updateConnection(func(c *authv1alpha1.MauticConnection) {
		c.Spec.TokenSecret = &authv1alpha1.TokenSecretSpec{Template: &authv1alpha1.SecretTemplate{Labels: map[string]string{"team": "sales"}}}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(e.tokenSecret().Labels).To(HaveKeyWithValue("team", "sales"))
	}).WithTimeout(10 * time.Second).WithPolling(poll).Should(Succeed())
	restored(g)
	g.Expect(e.Mautic.TokenRequests()).To(Equal(1), "repairs and template changes never mint a token")
}

// Errors a person must fix stall the connection with a reason naming the fix, and are
// not retried in a loop.
func TestConfigurationErrorsStallWithoutRetrying(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		break_  func(e *env)
		reason  string
		message string
	}{
		{
			name:    "invalid_client",
			break_:  func(e *env) { e.Mautic.SetClientSecret(e.App.ID, "not-what-the-secret-says") },
			reason:  authv1alpha1.InvalidClientReason,
			message: "check client_id and client_secret",
		},
		{
			name: "unauthorized_client",
			break_: func(e *env) {
				e.App = e.Mautic.NewClient("user-created", false)
			},
			reason:  authv1alpha1.GrantNotAllowedReason,
			message: "Client Credentials grant",
		},
		{
			name:    "api_disabled",
			break_:  func(e *env) { e.Mautic.SetAPIEnabled(false) },
			reason:  authv1alpha1.APIDisabledReason,
			message: "enable the API",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			e := newEnv(t)
			tc.break_(e)
			e.createClientCredentialsConnection()

			conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, tc.reason)
			g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring(tc.message))
			g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).NotTo(ContainSubstring(e.App.Secret))
			ready := condition(conn, authv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(tc.reason))
			g.Expect(e.tokenSecret()).To(BeNil())

			requests := e.Mautic.TokenRequests()
			g.Expect(requests).To(Equal(1))
			g.Consistently(e.Mautic.TokenRequests).WithTimeout(3*time.Second).WithPolling(100*time.Millisecond).
				Should(Equal(requests), "no retry loop")
		})
	}
}

// 5xx, timeouts and HTML answers are retried with backoff while the still-valid token
// stays published and Ready stays True until it really expires; recovery is automatic.
func TestTransientErrorsKeepTheValidTokenPublished(t *testing.T) {
	t.Parallel()
	faults := []mautictest.Fault{mautictest.FaultServerError, mautictest.FaultUnavailable, mautictest.FaultHTML, mautictest.FaultSlow}
	for _, fault := range faults {
		t.Run(fault.String(), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			e := newEnv(t)
			e.Mautic.SetAccessTokenLifetime(8 * time.Second)
			e.Mautic.SetSlowDelay(3 * time.Second) // longer than the client's 1s timeout
			e.createClientCredentialsConnection()
			_, published := e.waitReady(authv1alpha1.TokenValidReason)
			e.Mautic.InjectFault(fault, -1)

			conn := e.waitFor(authv1alpha1.ReconcilingCondition, metav1.ConditionTrue, authv1alpha1.RefreshFailedReason)
			g.Expect(time.Now()).To(BeTemporally("<", conn.Status.ExpiresAt.Time), "the failure shows before expiry")
			ready := condition(conn, authv1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "Ready while the token is valid: %s", ready.Message)
			g.Expect(accessToken(e.tokenSecret())).To(Equal(accessToken(published)))
			g.Expect(conn.Status.FailedAttempts).To(BeNumerically(">=", 1))
			g.Expect(conn.Status.LastFailureTime).NotTo(BeNil())

			conn = e.waitFor(authv1alpha1.ReadyCondition, metav1.ConditionFalse, authv1alpha1.TokenExpiredReason)
			g.Expect(time.Now()).To(BeTemporally(">=", conn.Status.ExpiresAt.Time))
			g.Expect(accessToken(e.tokenSecret())).To(Equal(accessToken(published)), "a failed refresh never removes the token")
			g.Expect(e.Mautic.TokenRequests()).To(BeNumerically("<=", 1+8), "backoff, not a hot loop")

			// Recovery comes from the backoff's own next attempt, which after expiry may be up to a minute away.
			e.Mautic.ClearFaults()
			g.Eventually(func(g Gomega) {
				g.Expect(condition(e.connection(), authv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
			}).WithTimeout(90 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
			_, recovered := e.waitReady(authv1alpha1.TokenValidReason)
			g.Expect(accessToken(recovered)).NotTo(Equal(accessToken(published)))
			g.Expect(condition(e.connection(), authv1alpha1.ReconcilingCondition)).To(BeNil())
			g.Expect(e.connection().Status.FailedAttempts).To(BeZero())
		})
	}
}

// A missing credentials Secret or key names the Secret and key, and recovers by itself.
func TestMissingCredentialsNameTheFixAndRecover(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createConnection(e.newConnection())

	conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.CredentialsSecretNotFoundReason)
	g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring(e.Namespace + "/" + testenv.CredentialsName))

	e.createCredentials(map[string]string{authv1alpha1.ClientIDKey: e.App.ID})
	conn = e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.CredentialsKeyMissingReason)
	g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(
		And(ContainSubstring(e.Namespace+"/"+testenv.CredentialsName), ContainSubstring("has no client_secret")))

	e.updateCredentials(e.clientCredentials())
	e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(condition(e.connection(), authv1alpha1.StalledCondition)).To(BeNil())
	g.Expect(e.Mautic.TokenRequests()).To(Equal(1))
	// Every step told the user through an event whose reason is the condition's reason.
	g.Eventually(e.eventReasons).WithTimeout(eventually).Should(ContainElements(
		authv1alpha1.CredentialsSecretNotFoundReason, authv1alpha1.CredentialsKeyMissingReason, authv1alpha1.TokenValidReason))
}

// Basic credentials are published as an Authorization header once Mautic accepts them,
// and a server with Basic auth disabled stalls the connection with a reason that says so.
func TestBasicCredentials(t *testing.T) {
	t.Parallel()
	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		e := newEnv(t)
		e.Mautic.SetBasicAuthEnabled(true)
		e.Mautic.AddUser("api-user", "s3cret pass")
		e.createBasicConnection("api-user", "s3cret pass")

		conn, secret := e.waitReady(authv1alpha1.CredentialsVerifiedReason)
		g.Expect(string(secret.Data[authv1alpha1.AuthorizationKey])).To(HavePrefix("Basic "))
		g.Expect(string(secret.Data[authv1alpha1.TokenTypeKey])).To(Equal("basic"))
		g.Expect(secret.Data).NotTo(HaveKey(authv1alpha1.AccessTokenKey))
		g.Expect(secret.Data).NotTo(HaveKey(authv1alpha1.ExpiresAtKey))
		g.Expect(e.apiStatus(string(secret.Data[authv1alpha1.AuthorizationKey]))).To(Equal(http.StatusOK))
		g.Expect(conn.Status.ExpiresAt).To(BeNil())
		g.Expect(conn.Status.RenewAt).NotTo(BeNil(), "Basic credentials are checked again periodically")
		g.Expect(e.Mautic.TokenRequests()).To(BeZero())
	})
	t.Run("disabled on the server", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		e := newEnv(t)
		e.Mautic.AddUser("api-user", "s3cret")
		e.createBasicConnection("api-user", "s3cret")

		conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.BasicAuthDisabledReason)
		g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring("enable HTTP basic auth"))
		g.Expect(condition(conn, authv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionFalse))
		g.Expect(e.tokenSecret()).To(BeNil())
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		e := newEnv(t)
		e.Mautic.SetBasicAuthEnabled(true)
		e.Mautic.AddUser("api-user", "right")
		e.createBasicConnection("api-user", "wrong")

		conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.InvalidBasicCredentialsReason)
		g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).NotTo(ContainSubstring("wrong"))
	})
}

// The refresh-requested-at annotation mints exactly one new token per new value.
func TestRefreshRequestedByAnnotation(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createClientCredentialsConnection()
	_, before := e.waitReady(authv1alpha1.TokenValidReason)

	e.updateConnection(func(c *authv1alpha1.MauticConnection) {
		c.Annotations = map[string]string{authv1alpha1.RefreshRequestedAtAnnotation: "2026-11-22T10:00:00Z"}
	})
	g.Eventually(func(g Gomega) {
		g.Expect(accessToken(e.tokenSecret())).NotTo(Equal(accessToken(before)))
		g.Expect(e.connection().Status.LastHandledRefreshRequest).To(Equal("2026-11-22T10:00:00Z"))
	}).WithTimeout(10 * time.Second).WithPolling(poll).Should(Succeed())
	g.Consistently(e.Mautic.TokenRequests).WithTimeout(2 * time.Second).Should(Equal(2))
}

// A suspended connection makes no token request, even when its token is due.
func TestSuspendStopsRefreshes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(3 * time.Second)
	e.createClientCredentialsConnection()
	e.waitReady(authv1alpha1.TokenValidReason)

	e.updateConnection(func(c *authv1alpha1.MauticConnection) { c.Spec.Suspend = true })
	g.Eventually(func() int64 { return e.connection().Status.ObservedGeneration }).
		WithTimeout(eventually).Should(Equal(e.connection().Generation))
	requests := e.Mautic.TokenRequests()
	g.Consistently(e.Mautic.TokenRequests).WithTimeout(4 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(requests))
	g.Expect(e.tokenSecret()).NotTo(BeNil(), "suspending never removes the token")
	e.waitFor(authv1alpha1.ReadyCondition, metav1.ConditionFalse, authv1alpha1.SuspendedReason)

	e.updateConnection(func(c *authv1alpha1.MauticConnection) { c.Spec.Suspend = false })
	e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(e.Mautic.TokenRequests()).To(BeNumerically(">", requests))
}

// A Secret of the token Secret's name that the operator does not manage is never overwritten.
func TestForeignTokenSecretIsNotOverwritten(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: testenv.TokenSecretName, Namespace: e.Namespace},
		StringData: map[string]string{"precious": "data"}}
	g.Expect(k8sClient.Create(e.Ctx, foreign)).To(Succeed())
	e.createClientCredentialsConnection()

	e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.TokenSecretConflictReason)
	g.Expect(string(e.tokenSecret().Data["precious"])).To(Equal("data"))
	g.Expect(e.tokenSecret().Data).NotTo(HaveKey(authv1alpha1.AuthorizationKey))
	g.Expect(e.Mautic.TokenRequests()).To(BeZero())
}

// A CA Secret lets the operator trust a Mautic site with a private certificate.
func TestPrivateCAFromSecret(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	tlsServer := e.useTLSServer()
	conn := e.newConnection()
	withPrivateCA(conn, "mautic-ca")
	e.createConnection(conn)

	e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.CASecretInvalidReason)
	e.createCASecret("mautic-ca", tlsServer.CACertPEM())
	e.waitReady(authv1alpha1.TokenValidReason)

	e.updateConnection(func(c *authv1alpha1.MauticConnection) { c.Spec.TLS = nil })
	e.updateConnection(func(c *authv1alpha1.MauticConnection) {
		c.Annotations = map[string]string{authv1alpha1.RefreshRequestedAtAnnotation: "now"}
	})
	conn = e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.TLSErrorReason)
	g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring("spec.tls.caSecretRef"))
	g.Expect(ptr.Deref(conn.Status.ExpiresAt, metav1.Time{}).Time).To(BeTemporally(">", time.Now()), "the valid token stays")
}
