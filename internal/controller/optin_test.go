package controller_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/operator"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// With --require-credentials-label, a connection cannot send a Secret's credentials anywhere until
// someone labels that Secret; then it heals at once.
func TestCredentialsSecretMustOptIn(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.restartManager(nil, func(o *operator.Options) { o.RequireCredentialsLabel = true })
	e.createClientCredentialsConnection()

	conn := e.waitFor(authv1alpha1.StalledCondition, metav1.ConditionTrue, authv1alpha1.CredentialsNotOptedInReason)
	g.Expect(condition(conn, authv1alpha1.StalledCondition).Message).To(ContainSubstring(
		"kubectl label secret " + testenv.CredentialsName + " -n " + e.Namespace + " " + authv1alpha1.CredentialsOptInLabel + "=true"))
	g.Expect(e.Mautic.TokenRequests()).To(BeZero(), "nothing was sent")

	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: testenv.CredentialsName}, secret)).To(Succeed())
	metav1.SetMetaDataLabel(&secret.ObjectMeta, authv1alpha1.CredentialsOptInLabel, "true")
	g.Expect(k8sClient.Update(e.Ctx, secret)).To(Succeed())
	e.waitReady(authv1alpha1.TokenValidReason)
}
