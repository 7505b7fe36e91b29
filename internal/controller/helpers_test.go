package controller_test

import (
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

const (
	eventually = 20 * time.Second
	poll       = 50 * time.Millisecond
)

// createCredentials creates the credentials Secret with the given keys.
func (e *env) createCredentials(data map[string]string) {
	e.t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: testenv.CredentialsName, Namespace: e.Namespace}, StringData: data}
	NewWithT(e.t).Expect(k8sClient.Create(e.Ctx, secret)).To(Succeed())
}

// clientCredentials returns the credentials Secret keys of the test's Mautic client.
func (e *env) clientCredentials() map[string]string {
	return map[string]string{authv1alpha1.ClientIDKey: e.App.ID, authv1alpha1.ClientSecretKey: e.App.Secret}
}

// useTLSServer makes the test's Mautic a test server with a private CA, with one API client and
// the credentials Secret for it, and returns it.
func (e *env) useTLSServer() *mautictest.Server {
	e.t.Helper()
	tlsServer := mautictest.NewTLSServer()
	e.t.Cleanup(tlsServer.Close)
	e.Mautic = tlsServer
	e.App = tlsServer.NewClient("crm", true)
	e.createCredentials(e.clientCredentials())
	return tlsServer
}

// createCASecret creates the Secret name holding the CA bundle caPEM.
func (e *env) createCASecret(name string, caPEM []byte) {
	e.t.Helper()
	NewWithT(e.t).Expect(k8sClient.Create(e.Ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.Namespace},
		Data: map[string][]byte{authv1alpha1.CACertKey: caPEM}})).To(Succeed())
}

// withPrivateCA makes conn an https connection that trusts the CA in the Secret caSecret.
func withPrivateCA(conn *authv1alpha1.MauticConnection, caSecret string) {
	conn.Spec.AllowInsecureHTTP = false
	conn.Spec.TLS = &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: caSecret}}
}

// newConnection returns a connection to the test server; mutate it before createConnection.
func (e *env) newConnection() *authv1alpha1.MauticConnection {
	return &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.ConnectionName, Namespace: e.Namespace},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  e.Mautic.URL() + "/",
			AllowInsecureHTTP:    true,
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: testenv.CredentialsName},
		},
	}
}

func (e *env) createConnection(conn *authv1alpha1.MauticConnection) {
	e.t.Helper()
	NewWithT(e.t).Expect(k8sClient.Create(e.Ctx, conn)).To(Succeed())
}

// createBasicConnection creates a credentials Secret with username and password and a connection
// with grant Basic that reads it.
func (e *env) createBasicConnection(username, password string) {
	e.t.Helper()
	e.createCredentials(map[string]string{authv1alpha1.UsernameKey: username, authv1alpha1.PasswordKey: password})
	conn := e.newConnection()
	conn.Spec.Grant = authv1alpha1.GrantBasic
	e.createConnection(conn)
}

// createClientCredentialsConnection creates the credentials Secret of the test's Mautic client
// and the connection newConnection returns.
func (e *env) createClientCredentialsConnection() {
	e.t.Helper()
	e.createCredentials(e.clientCredentials())
	e.createConnection(e.newConnection())
}

// createSeededCredentials makes e.App a Mautic client not allowed the client-credentials grant
// and creates the credentials Secret with its id and secret and a refresh token Mautic issued to
// it, the seed of an AuthorizationCode connection.
func (e *env) createSeededCredentials() {
	e.t.Helper()
	e.App = e.Mautic.NewClient("crm-user", false)
	credentials := e.clientCredentials()
	credentials[authv1alpha1.RefreshTokenKey] = e.Mautic.IssueRefreshToken(e.App.ID)
	e.createCredentials(credentials)
}

// connection reads the connection uncached.
func (e *env) connection() *authv1alpha1.MauticConnection {
	e.t.Helper()
	conn := &authv1alpha1.MauticConnection{}
	NewWithT(e.t).Expect(k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.ConnectionName}, conn)).To(Succeed())
	return conn
}

// tokenSecret reads the token Secret uncached; nil when it does not exist. Every read checks that it
// never holds a client secret, password or refresh token.
func (e *env) tokenSecret() *corev1.Secret {
	e.t.Helper()
	secret := &corev1.Secret{}
	if err := k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.TokenSecretName}, secret); err != nil {
		NewWithT(e.t).Expect(client.IgnoreNotFound(err)).To(Succeed())
		return nil
	}
	e.expectNoCredentialsIn(secret)
	return secret
}

// expectNoCredentialsIn fails when a Secret the operator wrote carries a credential.
func (e *env) expectNoCredentialsIn(secret *corev1.Secret) {
	e.t.Helper()
	g := NewWithT(e.t)
	for key, value := range secret.Data {
		g.Expect(key).NotTo(BeElementOf("client_secret", "password", "refresh_token"), "token Secret key %s", key)
		if e.App.Secret != "" {
			g.Expect(string(value)).NotTo(ContainSubstring(e.App.Secret), "token Secret key %s holds the client secret", key)
		}
	}
	for key, value := range secret.Annotations {
		g.Expect(value).NotTo(ContainSubstring(e.App.Secret), "annotation %s holds the client secret", key)
	}
	if state := e.stateSecret(); state != nil {
		refreshToken := string(state.Data[authv1alpha1.RefreshTokenKey])
		for key, value := range secret.Data {
			g.Expect(string(value)).NotTo(ContainSubstring(refreshToken), "token Secret key %s holds the refresh token", key)
		}
	}
}

// eventReasons lists the reasons of the events recorded on the connection.
func (e *env) eventReasons() []string {
	e.t.Helper()
	list := &eventsv1.EventList{}
	NewWithT(e.t).Expect(k8sClient.List(e.Ctx, list, client.InNamespace(e.Namespace))).To(Succeed())
	var reasons []string
	for _, event := range list.Items {
		if event.Regarding.Kind == authv1alpha1.Kind && event.Regarding.Name == testenv.ConnectionName {
			reasons = append(reasons, event.Reason)
		}
	}
	return reasons
}

// stateSecret reads the operator-only state Secret uncached; nil when it does not exist.
func (e *env) stateSecret() *corev1.Secret {
	e.t.Helper()
	secret := &corev1.Secret{}
	if err := k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.ConnectionName + authv1alpha1.StateSecretSuffix}, secret); err != nil {
		NewWithT(e.t).Expect(client.IgnoreNotFound(err)).To(Succeed())
		return nil
	}
	return secret
}

// condition returns the connection's condition of type t, or nil.
func condition(conn *authv1alpha1.MauticConnection, conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(conn.Status.Conditions, conditionType)
}

// waitFor waits until the connection's condition has the status and reason, and returns the connection.
func (e *env) waitFor(conditionType string, status metav1.ConditionStatus, reason string) *authv1alpha1.MauticConnection {
	e.t.Helper()
	var conn *authv1alpha1.MauticConnection
	NewWithT(e.t).Eventually(func(g Gomega) {
		conn = &authv1alpha1.MauticConnection{}
		g.Expect(k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.ConnectionName}, conn)).To(Succeed())
		c := condition(conn, conditionType)
		g.Expect(c).NotTo(BeNil(), "condition %s", conditionType)
		g.Expect(c.Status).To(Equal(status), "condition %s: %s", conditionType, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "condition %s: %s", conditionType, c.Message)
		g.Expect(c.ObservedGeneration).To(Equal(conn.Generation))
		g.Expect(conn.Status.ObservedGeneration).To(Equal(conn.Generation))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	return conn
}

// waitReady waits for Ready=True with the given reason and a published token Secret.
func (e *env) waitReady(reason string) (*authv1alpha1.MauticConnection, *corev1.Secret) {
	e.t.Helper()
	conn := e.waitFor(authv1alpha1.ReadyCondition, metav1.ConditionTrue, reason)
	var secret *corev1.Secret
	NewWithT(e.t).Eventually(func(g Gomega) {
		secret = e.tokenSecret()
		g.Expect(secret).NotTo(BeNil())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	return conn, secret
}

// apiStatus calls Mautic's /api/users/self with an Authorization header value, as a workload would.
func (e *env) apiStatus(authorization string) int {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.Ctx, http.MethodGet, e.Mautic.URL()+mautic.DefaultVerifyPath, nil)
	NewWithT(e.t).Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	NewWithT(e.t).Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	return resp.StatusCode
}

// accessToken returns the bare token from a token Secret.
func accessToken(secret *corev1.Secret) string {
	return strings.TrimPrefix(string(secret.Data[authv1alpha1.AuthorizationKey]), "Bearer ")
}

// update applies mutate to the connection and writes it, retrying on conflicts.
func (e *env) updateConnection(mutate func(*authv1alpha1.MauticConnection)) {
	e.t.Helper()
	NewWithT(e.t).Eventually(func() error {
		conn := e.connection()
		mutate(conn)
		return k8sClient.Update(e.Ctx, conn)
	}).WithTimeout(eventually).Should(Succeed())
}

// updateCredentials replaces the credentials Secret's data.
func (e *env) updateCredentials(data map[string]string) {
	e.t.Helper()
	NewWithT(e.t).Eventually(func() error {
		secret := &corev1.Secret{}
		if err := k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.CredentialsName}, secret); err != nil {
			return err
		}
		secret.Data = nil
		secret.StringData = data
		return k8sClient.Update(e.Ctx, secret)
	}).WithTimeout(eventually).Should(Succeed())
}
