package e2e

import (
	"bytes"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// TestRestartMakesNoTokenRequests: a manager that starts again with valid tokens in place
// reconciles the connection without asking Mautic for a token (docs/architecture.md), the token
// Secret keeps its token, and the restarted manager repairs a deleted token Secret from the token
// it found, still without a token request.
func TestRestartMakesNoTokenRequests(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	conn := s.waitSampleReady(ctx, g)
	before := s.tokenSecret(ctx, g, conn)
	tokenRequests := s.env.Mautic.TokenRequestsByClient(s.env.MauticClient.ID)

	s.stopManager(t)
	g.Expect(s.restartManager(ctx)).To(Succeed())
	// A new process starts its metrics from nothing: the connection's series appear once the
	// restarted manager has reconciled it.
	connection := map[string]string{"namespace": conn.Namespace, "name": conn.Name}
	g.Eventually(func(g Gomega) {
		metrics := s.scrapeMetrics(ctx, g)
		g.Expect(metrics.value("mautic_operator_connection_ready", connection)).To(Equal(1.0))
		g.Expect(metrics.value("mautic_operator_refresh_total", withLabels(connection, "result", "success"))).To(BeZero())
	}).Should(Succeed())

	g.Expect(s.env.Mautic.TokenRequestsByClient(s.env.MauticClient.ID)).To(Equal(tokenRequests), "token requests after the restart")
	after := s.tokenSecret(ctx, g, conn)
	// Compared without gomega's matchers, which would print the tokens on failure.
	g.Expect(bytes.Equal(after.Data[authv1alpha1.AccessTokenKey], before.Data[authv1alpha1.AccessTokenKey])).To(BeTrue(),
		"the token Secret keeps its token")

	g.Expect(s.env.Client.Delete(ctx, after)).To(Succeed())
	restored := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, client.ObjectKeyFromObject(after), restored)).To(Succeed())
		g.Expect(restored.UID).NotTo(Equal(after.UID), "a new Secret, not the deleted one")
	}).Should(Succeed())
	g.Expect(bytes.Equal(restored.Data[authv1alpha1.AccessTokenKey], before.Data[authv1alpha1.AccessTokenKey])).To(BeTrue(),
		"the restarted manager restores the deleted token Secret with the valid token it found in it, "+
			"not a new one: the token memory of internal/controller must learn tokens read from the Secret, not only those it issued")
	g.Expect(s.env.Mautic.TokenRequestsByClient(s.env.MauticClient.ID)).To(Equal(tokenRequests), "token requests to restore the Secret")
}
