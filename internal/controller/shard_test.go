package controller_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// Connections split across manager deployments by a label selector: each manager serves only
// the connections its selector matches, so a cluster that outgrows one manager shards.
func TestShardsServeOnlyTheirConnections(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.stop()
	e.createCredentials(e.clientCredentials())
	for _, shard := range []string{"a", "b"} {
		conn := e.newConnection()
		conn.Name = "crm-" + shard
		conn.Labels = map[string]string{"shard": shard}
		e.createConnection(conn)
	}
	status := func(name string) func() *authv1alpha1.MauticConnectionStatus {
		return func() *authv1alpha1.MauticConnectionStatus {
			conn := &authv1alpha1.MauticConnection{}
			g.Expect(k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: name}, conn)).To(Succeed())
			return &conn.Status
		}
	}
	shard := func(selector string) func(*operator.Options) {
		return func(o *operator.Options) {
			o.ConnectionSelector = labels.SelectorFromSet(labels.Set{"shard": selector})
		}
	}

	stopA := controlPlane.StartManager(t, e.Namespace, shard("a"))
	g.Eventually(status("crm-a")).WithTimeout(eventually).Should(HaveField("ObservedGeneration", int64(1)))
	g.Consistently(status("crm-b")).WithTimeout(3*time.Second).Should(HaveField("ObservedGeneration", int64(0)),
		"shard a's manager leaves shard b's connection alone")
	g.Expect(e.Mautic.TokenRequests()).To(Equal(1))

	controlPlane.StartManager(t, e.Namespace, shard("b"))
	g.Eventually(status("crm-b")).WithTimeout(eventually).Should(HaveField("ObservedGeneration", int64(1)))
	g.Expect(e.Mautic.TokenRequests()).To(Equal(2), "one token for each connection, from its own shard")
	stopA()
}
