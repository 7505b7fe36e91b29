// Package gitops_test checks what GitOps tools see of live MauticConnections: Argo CD's health
// check and refresh action (config/argocd/), run with gopher-lua as Argo CD runs them, and kstatus,
// which Flux uses, both evaluated by test/gitopshealth. Objects come from a real API server and the
// real reconciler.
package gitops_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

const (
	// eventually is generous: the build machines have two cores and other suites run alongside.
	eventually = 30 * time.Second
	poll       = 50 * time.Millisecond
)

// TestMain stops the package's control plane, if a test started one.
func TestMain(m *testing.M) {
	testenv.Main(m)
}

// env is one test's world: a namespace, a Mautic test server with one API client, and, once
// started, a manager running the real reconciler for that namespace only.
type env struct {
	*testenv.Test
	t *testing.T
}

// newEnv creates a namespace and a Mautic test server. No manager watches the namespace until
// startManager, so objects can be read as the operator has never seen them.
func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{Test: testenv.NewTest(t, "gitops-"), t: t}
}

// newReadyEnv creates a test's world whose Mautic test server issues tokens that live for
// lifetime, the credentials Secret and a connection adjusted by mutate, starts the manager, and
// waits until the connection is Ready.
func newReadyEnv(t *testing.T, lifetime time.Duration, mutate func(*authv1alpha1.MauticConnection)) *env {
	t.Helper()
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(lifetime)
	e.createCredentials(e.App.Secret)
	e.createConnection(mutate)
	e.startManager()
	e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.ReadyCondition)).To(HaveKeyWithValue("status", "True"))
	})
	return e
}

// startManager starts a manager that watches only the test's namespace, as the real one does with
// --watch-namespaces, with the real Mautic client; it stops when the test ends.
func (e *env) startManager() {
	e.t.Helper()
	e.StartManager()
}

// createCredentials creates the credentials Secret with the test client's id and the given secret.
func (e *env) createCredentials(clientSecret string) {
	e.t.Helper()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.CredentialsName, Namespace: e.Namespace},
		StringData: map[string]string{authv1alpha1.ClientIDKey: e.App.ID, authv1alpha1.ClientSecretKey: clientSecret},
	}
	NewWithT(e.t).Expect(e.Client.Create(e.Ctx, secret)).To(Succeed())
}

// createConnection creates a connection to the test server after mutate has adjusted it.
func (e *env) createConnection(mutate func(*authv1alpha1.MauticConnection)) {
	e.t.Helper()
	conn := &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Name: testenv.ConnectionName, Namespace: e.Namespace},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  e.Mautic.URL(),
			AllowInsecureHTTP:    true,
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: testenv.CredentialsName},
		},
	}
	if mutate != nil {
		mutate(conn)
	}
	NewWithT(e.t).Expect(e.Client.Create(e.Ctx, conn)).To(Succeed())
}

// live reads the connection from the API server, uncached, as the unstructured object that Argo CD
// and Flux see.
func (e *env) live(g Gomega) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(authv1alpha1.GroupVersion.WithKind(authv1alpha1.Kind))
	g.Expect(e.Client.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.ConnectionName}, u)).To(Succeed())
	return u
}

// waitLive waits until check passes on the live object and returns that object.
func (e *env) waitLive(check func(g Gomega, u *unstructured.Unstructured)) *unstructured.Unstructured {
	e.t.Helper()
	var u *unstructured.Unstructured
	NewWithT(e.t).Eventually(func(g Gomega) {
		u = e.live(g)
		check(g, u)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	return u
}

// accessToken returns the published access token, "" when there is no token Secret.
func (e *env) accessToken(g Gomega) string {
	secret := &corev1.Secret{}
	err := e.Client.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.TokenSecretName}, secret)
	g.Expect(client.IgnoreNotFound(err)).To(Succeed())
	return string(secret.Data[authv1alpha1.AccessTokenKey])
}
