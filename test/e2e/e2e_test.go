package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/testenv/gitopshealth"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// eventuallyTimeout is generous: the machine has two cores and other packages test in parallel.
	eventuallyTimeout = 60 * time.Second
	pollInterval      = 250 * time.Millisecond
)

// tokenSecretKeys are exactly the keys of a ClientCredentials token Secret.
var tokenSecretKeys = []string{
	authv1alpha1.AccessTokenKey, authv1alpha1.AuthorizationKey, authv1alpha1.TokenTypeKey,
	authv1alpha1.ExpiresAtKey, authv1alpha1.URLKey,
}

// TestSamplesBecomeReady: config/samples/ as a user applies it gets a working token Secret, and
// GitOps tools see it as done: Current for kstatus, Healthy for Argo CD.
func TestSamplesBecomeReady(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	conn := s.waitSampleReady(ctx, g)
	s.expectGitOpsHealth(ctx, g, client.ObjectKeyFromObject(conn), kstatus.CurrentStatus, argoCDHealthy)
	secret := s.tokenSecret(ctx, g, conn)
	g.Expect(sortedKeys(secret.Data)).To(Equal(sorted(tokenSecretKeys)))
	g.Expect(secret.Data).NotTo(HaveKey(authv1alpha1.ClientSecretKey))
	g.Expect(secret.Data).NotTo(HaveKey(authv1alpha1.RefreshTokenKey))
	g.Expect(string(secret.Data[authv1alpha1.TokenTypeKey])).To(Equal("bearer"))
	g.Expect(string(secret.Data[authv1alpha1.URLKey])).To(Equal(s.env.Mautic.URL()))
	g.Expect(metav1.IsControlledBy(secret, conn)).To(BeTrue(), "the token Secret is controlled by its connection")

	httpClient, err := s.env.MauticHTTPClient()
	g.Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.env.Mautic.URL()+"/api/users/self", nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", string(secret.Data[authv1alpha1.AuthorizationKey]))
	resp, err := httpClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "Mautic accepts the published authorization value")
}

// TestManagerProbes: the manager's health and readiness endpoints answer 200.
func TestManagerProbes(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	httpClient := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		g.Eventually(func(g Gomega) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.probeAddr+path, nil)
			g.Expect(err).NotTo(HaveOccurred())
			resp, err := httpClient.Do(req)
			g.Expect(err).NotTo(HaveOccurred())
			defer func() { _ = resp.Body.Close() }()
			_, _ = io.Copy(io.Discard, resp.Body)
			g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "GET %s", path)
		}).Should(Succeed())
	}
}

// TestTokenValidEvent: the connection carries an events.k8s.io/v1 event with reason TokenValid.
func TestTokenValidEvent(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	conn := s.waitSampleReady(ctx, g)
	g.Eventually(func(g Gomega) {
		events := &eventsv1.EventList{}
		g.Expect(s.env.Client.List(ctx, events, client.InNamespace(conn.Namespace))).To(Succeed())
		var reasons []string
		for _, event := range events.Items {
			if event.Regarding.Kind == authv1alpha1.Kind && event.Regarding.Name == conn.Name {
				reasons = append(reasons, event.Reason)
			}
		}
		g.Expect(reasons).To(ContainElement(authv1alpha1.TokenValidReason))
	}).Should(Succeed())
}

// TestDeletedTokenSecretIsRestored: a deleted token Secret comes back with the same, still valid
// token, without asking Mautic for a new one.
func TestDeletedTokenSecretIsRestored(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	conn := s.waitSampleReady(ctx, g)
	deleted := s.tokenSecret(ctx, g, conn)
	tokenRequests := s.env.Mautic.TokenRequestsByClient(s.env.MauticClient.ID)
	g.Expect(s.env.Client.Delete(ctx, deleted)).To(Succeed())

	restored := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, client.ObjectKeyFromObject(deleted), restored)).To(Succeed())
		g.Expect(restored.UID).NotTo(Equal(deleted.UID), "a new Secret, not the deleted one")
	}).Should(Succeed())
	// Compared without gomega's matchers, which would print the tokens on failure.
	g.Expect(bytes.Equal(restored.Data[authv1alpha1.AccessTokenKey], deleted.Data[authv1alpha1.AccessTokenKey])).
		To(BeTrue(), "the restored Secret holds the same access token")
	g.Expect(sortedKeys(restored.Data)).To(Equal(sorted(tokenSecretKeys)))
	g.Expect(s.env.Mautic.TokenRequestsByClient(s.env.MauticClient.ID)).To(Equal(tokenRequests),
		"restoring the Secret made no token request")
}

// TestBadClientSecretStalls: Mautic refusing the client secret stalls the connection with a reason
// that names the fix, which GitOps tools report as a failure: Failed for kstatus, Degraded with
// that reason for Argo CD.
func TestBadClientSecretStalls(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	const namespace, name = "e2e-bad-secret", "crm-bad-secret"
	app := s.env.Mautic.NewClient("e2e bad secret", true)
	_, err := s.env.Apply(ctx, namespace,
		object("v1", "Namespace", "", namespace, nil),
		object("v1", "Secret", namespace, localenv.CASecretName, map[string]any{
			"data": map[string]any{authv1alpha1.CACertKey: base64.StdEncoding.EncodeToString(s.env.Mautic.CACertPEM())},
		}),
		object("v1", "Secret", namespace, "mautic-api", map[string]any{
			"stringData": map[string]any{
				authv1alpha1.ClientIDKey:     app.ID,
				authv1alpha1.ClientSecretKey: "not-the-client-secret-" + randomHex(),
			},
		}),
		object(authv1alpha1.GroupVersion.String(), authv1alpha1.Kind, namespace, name, map[string]any{
			"spec": map[string]any{
				"url":                  s.env.Mautic.URL(),
				"grant":                "ClientCredentials",
				"credentialsSecretRef": map[string]any{"name": "mautic-api"},
				"tls":                  map[string]any{"caSecretRef": map[string]any{"name": localenv.CASecretName}},
			},
		}),
	)
	g.Expect(err).NotTo(HaveOccurred())

	conn := &authv1alpha1.MauticConnection{}
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, conn)).To(Succeed())
		stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition)
		g.Expect(stalled).NotTo(BeNil(), "conditions: %v", conn.Status.Conditions)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue), "Stalled: %s", stalled.Message)
		g.Expect(stalled.Reason).To(Equal(authv1alpha1.InvalidClientReason), "Stalled: %s", stalled.Message)
	}).Should(Succeed())
	g.Expect(apimeta.IsStatusConditionFalse(conn.Status.Conditions, authv1alpha1.ReadyCondition)).To(BeTrue(),
		"Ready=False while Stalled; conditions: %v", conn.Status.Conditions)
	argoMessage := s.expectGitOpsHealth(ctx, g, client.ObjectKeyFromObject(conn), kstatus.FailedStatus, argoCDDegraded)
	g.Expect(argoMessage).To(HavePrefix(authv1alpha1.InvalidClientReason + ": "))
}

// TestNoSecretsInManagerLog: the manager never logs a token or a client secret. Every credential
// and token in the cluster, and the test server's client secret, is looked for in the log of every
// run of the main manager.
func TestNoSecretsInManagerLog(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	s.waitSampleReady(ctx, g)
	values := s.secretValues(ctx, g)
	g.Expect(values).To(HaveKey(ContainSubstring(authv1alpha1.AccessTokenKey)), "at least one token to look for")

	for _, logPath := range s.managerLogs {
		logText, err := os.ReadFile(logPath)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(logText).NotTo(BeEmpty(), "the manager logs something")
		g.Expect(leakedValues(logText, values)).To(BeEmpty(), "the manager log %s shows these values (not printed here)", logPath)
	}
}

// TestNoRBACDenialsInManagerLog: the manager, acting as the operator's ServiceAccount with the RBAC
// of config/, is never refused by the API server, also where a refusal would only be logged
// (events, leader election).
func TestNoRBACDenialsInManagerLog(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)

	if s.sampleErr == nil {
		// Let the manager do its work first; TestSamplesBecomeReady reports whether it did.
		_, _ = s.env.WaitReady(t.Context(), s.samples.Connection.Namespace, s.samples.Connection.Name, eventuallyTimeout)
	}
	for _, logPath := range s.managerLogs {
		denials, err := forbiddenLines(logPath)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(denials).To(BeEmpty(), "the API server refused %s: a +kubebuilder:rbac marker is missing", s.serviceAccount)
	}
}

// secretValues returns every credential and token held in the cluster's Secrets, and the test
// server's client secret, keyed by a description that shows no value.
func (s *suite) secretValues(ctx context.Context, g *WithT) map[string]string {
	secrets := &corev1.SecretList{}
	g.Expect(s.env.Client.List(ctx, secrets)).To(Succeed())
	values := map[string]string{"the test server's client secret": s.env.MauticClient.Secret}
	for _, secret := range secrets.Items {
		for _, key := range []string{
			authv1alpha1.ClientSecretKey, authv1alpha1.PasswordKey, authv1alpha1.RefreshTokenKey,
			authv1alpha1.AccessTokenKey, authv1alpha1.AuthorizationKey,
		} {
			value := string(secret.Data[key])
			if key == authv1alpha1.AuthorizationKey {
				_, value, _ = strings.Cut(value, " ") // the credential after "Bearer " or "Basic "
			}
			if value != "" {
				values["Secret "+secret.Namespace+"/"+secret.Name+" key "+key] = value
			}
		}
	}
	return values
}

// leakedValues returns, sorted, the descriptions of the values that text contains.
func leakedValues(text []byte, values map[string]string) []string {
	var leaked []string
	for what, value := range values {
		if bytes.Contains(text, []byte(value)) {
			leaked = append(leaked, what)
		}
	}
	slices.Sort(leaked)
	return leaked
}

// forbiddenLines returns the lines of a log that say "forbidden", in any case.
func forbiddenLines(logPath string) ([]string, error) {
	logText, err := os.ReadFile(logPath)
	if err != nil {
		return nil, err
	}
	var denials []string
	for line := range strings.Lines(string(logText)) {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			denials = append(denials, strings.TrimSpace(line))
		}
	}
	return denials, nil
}

// Argo CD health statuses (health.HealthStatusCode in gitops-engine) that the tests expect.
const (
	argoCDHealthy  = "Healthy"
	argoCDDegraded = "Degraded"
)

// expectGitOpsHealth reads the connection from the API server as the unstructured object that Argo
// CD and Flux see, expects kstatus and Argo CD's health check (config/argocd/) to report the given
// statuses, and returns Argo CD's health message.
func (s *suite) expectGitOpsHealth(ctx context.Context, g Gomega, key client.ObjectKey, wantKstatus kstatus.Status, wantArgoCD string) string {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(authv1alpha1.GroupVersion.WithKind(authv1alpha1.Kind))
	g.Expect(s.env.Client.Get(ctx, key, live)).To(Succeed())
	status, _ := json.Marshal(live.Object["status"])

	result, err := gitopshealth.KStatus(live.Object)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(result.Status).To(Equal(wantKstatus), "kstatus of %s: %s; generation %d, status %s", key, result.Message, live.GetGeneration(), status)
	argoCD, message, err := gitopshealth.ArgoCDHealth(live.Object)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(argoCD).To(Equal(wantArgoCD), "Argo CD health of %s: %s; generation %d, status %s", key, message, live.GetGeneration(), status)
	return message
}

// newG returns gomega with the suite's Eventually timeout and polling interval.
func newG(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(eventuallyTimeout)
	g.SetDefaultEventuallyPollingInterval(pollInterval)
	return g
}

// waitSampleReady waits for the sample connection to be Ready, failing at once when it is Stalled or
// the manager exits. Once it has failed, later calls fail at once with the same error, so that a
// broken operator fails the suite in one timeout rather than one per test.
func (s *suite) waitSampleReady(ctx context.Context, g *WithT) *authv1alpha1.MauticConnection {
	g.Expect(s.sampleErr).NotTo(HaveOccurred(), "the sample connection did not become Ready earlier")
	conn, err := s.env.WaitReady(ctx, s.samples.Connection.Namespace, s.samples.Connection.Name, eventuallyTimeout)
	s.sampleErr = err
	g.Expect(err).NotTo(HaveOccurred())
	return conn
}

// tokenSecret reads the connection's token Secret.
func (s *suite) tokenSecret(ctx context.Context, g Gomega, conn *authv1alpha1.MauticConnection) *corev1.Secret {
	name := conn.Status.TokenSecretName
	g.Expect(name).NotTo(BeEmpty(), "status.tokenSecretName")
	secret := &corev1.Secret{}
	g.Expect(s.env.Client.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: name}, secret)).To(Succeed())
	return secret
}

// object returns an object to apply with the given fields besides apiVersion, kind and metadata.
func object(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	metadata := map[string]any{"name": name}
	if namespace != "" {
		metadata["namespace"] = namespace
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": metadata}}
	for field, value := range fields {
		obj.Object[field] = value
	}
	return obj
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	return sorted(keys)
}

// sorted returns a sorted copy.
func sorted(items []string) []string {
	items = slices.Clone(items)
	slices.Sort(items)
	return items
}

// randomHex returns 32 random hex digits.
func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
