package controller_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// newAuthorizationCodeEnv returns an env whose connection uses AuthorizationCode, seeded from the
// credentials Secret with a refresh token the test server issued.
func newAuthorizationCodeEnv(t *testing.T, accessLifetime time.Duration) *env {
	t.Helper()
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(accessLifetime)
	e.createSeededCredentials()
	conn := e.newConnection()
	conn.Spec.Grant = authv1alpha1.GrantAuthorizationCode
	// Half the lifetime as margin: the lifetimes here are seconds, and CI machines are busy.
	conn.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBeforePercentage: ptr.To[int32](50)}
	e.createConnection(conn)
	return e
}

// watchRotation polls until the server saw `refreshes` refresh grants, checking at every poll that
// the published access token is valid and that the state Secret holds a refresh token Mautic accepts.
func (e *env) watchRotation(refreshes int, within time.Duration) {
	e.t.Helper()
	g := NewWithT(e.t)
	deadline := time.Now().Add(within)
	for e.Mautic.TokenRequestsByGrant("refresh_token") < refreshes {
		g.Expect(time.Now()).To(BeTemporally("<", deadline), "only %d refreshes", e.Mautic.TokenRequestsByGrant("refresh_token"))
		secret := e.tokenSecret()
		g.Expect(secret).NotTo(BeNil())
		g.Expect(e.Mautic.AccessTokenValid(accessToken(secret))).To(BeTrue(), "the published access token expired")
		g.Expect(e.Mautic.ReusedRefreshTokens()).To(BeZero(), "a rotated refresh token was spent again")
		g.Expect(condition(e.connection(), authv1alpha1.StalledCondition)).To(BeNil())
		time.Sleep(100 * time.Millisecond)
	}
}

// Over 20 refresh cycles every refresh uses the newest refresh token,
// none is spent twice, a valid access token is published throughout, and the token Secret never
// holds the refresh token.
func TestAuthorizationCodeRotatesForTwentyCycles(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newAuthorizationCodeEnv(t, 3*time.Second)
	conn, _ := e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(conn.Status.RefreshTokenExpiresAt).NotTo(BeNil())
	g.Expect(conn.Status.RefreshTokenExpiresAt.Sub(conn.Status.LastRefreshTime.Time)).To(BeNumerically("~", 336*time.Hour, time.Second))

	e.watchRotation(21, 120*time.Second)

	// The server counts a refresh before the operator has persisted its answer: look until it has.
	g.Eventually(func() bool {
		return e.Mautic.RefreshTokenValid(string(e.stateSecret().Data[authv1alpha1.RefreshTokenKey]))
	}).WithTimeout(5*time.Second).Should(BeTrue(), "the state Secret holds the newest refresh token")
	state := e.stateSecret()
	g.Expect(state.Data).To(HaveLen(1))
	g.Expect(state.Labels).To(HaveKeyWithValue(authv1alpha1.ManagedByLabel, authv1alpha1.ManagedByValue))
	g.Expect(metav1.IsControlledBy(state, e.connection())).To(BeTrue())
	g.Expect(e.Mautic.TokenRequestsByGrant("client_credentials")).To(BeZero())
}

// Two managers reconciling the same connection never spend one refresh token twice.
func TestAuthorizationCodeTwoManagersNeverSpendATokenTwice(t *testing.T) {
	t.Parallel()
	e := newAuthorizationCodeEnv(t, 3*time.Second)
	e.runManager()
	e.waitReady(authv1alpha1.TokenValidReason)
	e.watchRotation(8, 60*time.Second)
}

// A restarted manager continues the chain without re-authorization.
func TestAuthorizationCodeRestartContinuesTheChain(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// Long enough that a restart under load (stop, start, cache sync) fits in the renewal margin.
	e := newAuthorizationCodeEnv(t, 10*time.Second)
	e.waitReady(authv1alpha1.TokenValidReason)
	e.watchRotation(2, 30*time.Second)

	e.startManager()
	e.watchRotation(4, 40*time.Second)
	g.Expect(e.connection().Status.FailedAttempts).To(BeZero())
}

// A revoked refresh token stalls the connection with ReauthorizationRequired
// and the exact command to run, without a retry loop; a new seed recovers it.
func TestAuthorizationCodeRevokedTokenNeedsReauthorization(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// 6 s tokens, renewed after about 3 s: time enough to revoke the refresh token before the first
	// renewal spends it, even on a loaded machine, so that the token read here is the last published.
	e := newAuthorizationCodeEnv(t, 6*time.Second)
	_, published := e.waitReady(authv1alpha1.TokenValidReason)
	e.Mautic.RevokeRefreshTokens(e.App.ID)

	conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.ReauthorizationRequiredReason)
	message := condition(conn, authv1alpha1.StalledCondition).Message
	g.Expect(message).To(ContainSubstring("kubectl mautic authorize " + testenv.ConnectionName + " -n " + e.Namespace))
	g.Expect(condition(conn, authv1alpha1.ReadyCondition).Reason).To(Equal(authv1alpha1.ReauthorizationRequiredReason))
	g.Expect(accessToken(e.tokenSecret())).To(Equal(accessToken(published)), "the last access token is never removed")
	g.Eventually(e.eventReasons).WithTimeout(eventually).Should(ContainElement(authv1alpha1.ReauthorizationRequiredReason))
	requests := e.Mautic.TokenRequests()
	g.Consistently(e.Mautic.TokenRequests).WithTimeout(4*time.Second).WithPolling(100*time.Millisecond).
		Should(Equal(requests), "no retry loop on a refused refresh token")

	credentials := e.clientCredentials()
	credentials[authv1alpha1.RefreshTokenKey] = e.Mautic.IssueRefreshToken(e.App.ID)
	e.updateCredentials(credentials)
	e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(condition(e.connection(), authv1alpha1.StalledCondition)).To(BeNil())
	g.Expect(e.Mautic.ReusedRefreshTokens()).To(BeZero())
}

// Without a refresh token the connection says how to authorize it.
func TestAuthorizationCodeWithoutRefreshTokenAsksForAuthorization(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.App = e.Mautic.NewClient("crm-user", false)
	e.createCredentials(e.clientCredentials())
	conn := e.newConnection()
	conn.Spec.Grant = authv1alpha1.GrantAuthorizationCode
	e.createConnection(conn)

	conn = e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.AuthorizationRequiredReason)
	g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring("kubectl mautic authorize crm -n " + e.Namespace))
	g.Expect(e.Mautic.TokenRequests()).To(BeZero())
	g.Expect(strings.Contains(condition(conn, authv1alpha1.StalledCondition).Message, e.App.Secret)).To(BeFalse())
}

// spec.refreshTokenLifetime keeps the refresh token alive even when access tokens outlive it.
func TestAuthorizationCodeKeepsARefreshTokenAliveBeyondAccessTokens(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(time.Hour)
	e.Mautic.SetRefreshTokenLifetime(6 * time.Second)
	e.createSeededCredentials()
	conn := e.newConnection()
	conn.Spec.Grant = authv1alpha1.GrantAuthorizationCode
	conn.Spec.RefreshTokenLifetime = ptr.To[authv1alpha1.Duration]("6s")
	e.createConnection(conn)
	conn, _ = e.waitReady(authv1alpha1.TokenValidReason)
	g.Expect(conn.Status.RenewAt.Time).To(BeTemporally("<", conn.Status.RefreshTokenExpiresAt.Time))
	g.Expect(conn.Status.RefreshTokenExpiresAt.Time).To(BeTemporally("<", conn.Status.ExpiresAt.Time))

	e.watchRotation(4, 30*time.Second)
	// The server counts a refresh before the operator has persisted its answer: look until it has.
	g.Eventually(func() bool {
		return e.Mautic.RefreshTokenValid(string(e.stateSecret().Data[authv1alpha1.RefreshTokenKey]))
	}).WithTimeout(5*time.Second).Should(BeTrue(), "the refresh token never lapsed")
}
