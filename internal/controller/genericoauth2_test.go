package controller_test

import (
	"net/http"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// A standard OAuth2 server (RFC 6749 errors, its own token path, scopes) with
// the resource-owner password grant.
func TestPasswordGrantWithScopesAndTokenPath(t *testing.T) {
	t.Parallel()
	newGenericEnv := func(t *testing.T, password string) *env {
		e := newEnv(t)
		e.Mautic.SetGenericOAuth2(&mautictest.GenericOAuth2{TokenPath: "/oauth2/token", Scopes: []string{"read", "write"}})
		e.Mautic.AddUser("integration", "correct horse")
		credentials := e.clientCredentials()
		credentials[authv1alpha1.UsernameKey] = "integration"
		credentials[authv1alpha1.PasswordKey] = password
		e.createCredentials(credentials)
		conn := e.newConnection()
		conn.Spec.Grant = authv1alpha1.GrantPassword
		conn.Spec.TokenPath = "/oauth2/token"
		conn.Spec.Scopes = []string{"read", "write"}
		e.createConnection(conn)
		return e
	}

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		e := newGenericEnv(t, "correct horse")
		_, secret := e.waitReady(authv1alpha1.TokenValidReason)
		g.Expect(e.apiStatus(string(secret.Data[authv1alpha1.AuthorizationKey]))).To(Equal(http.StatusOK))
		g.Expect(e.Mautic.TokenRequestsByGrant("password")).To(Equal(1))
		g.Expect(secret.Data).NotTo(HaveKey(authv1alpha1.RefreshTokenKey))
	})
	t.Run("wrong password is a configuration error in RFC 6749 form", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		e := newGenericEnv(t, "battery staple")
		conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.RequestRejectedReason)
		message := condition(conn, authv1alpha1.StalledCondition).Message
		g.Expect(message).To(ContainSubstring("invalid_grant"))
		g.Expect(message).NotTo(ContainSubstring("battery staple"))
		g.Expect(e.Mautic.TokenRequests()).To(Equal(1))
	})
	t.Run("an unknown scope is refused", func(t *testing.T) {
		t.Parallel()
		e := newGenericEnv(t, "correct horse")
		e.updateConnection(func(c *authv1alpha1.MauticConnection) { c.Spec.Scopes = []string{"admin"} })
		e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.RequestRejectedReason)
	})
}
