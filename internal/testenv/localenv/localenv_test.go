package localenv

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

func TestDefaultGroups(t *testing.T) {
	g := NewWithT(t)
	g.Expect(defaultGroups("system:serviceaccount:ops:controller")).To(Equal(
		[]string{"system:serviceaccounts", "system:serviceaccounts:ops", "system:authenticated"}))
	g.Expect(defaultGroups("jane")).To(Equal([]string{"system:authenticated"}))
}

func TestDecodeYAML(t *testing.T) {
	g := NewWithT(t)
	objects, err := DecodeYAML([]byte("---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(objects).To(HaveLen(2))
	g.Expect(objects[0].GetKind()).To(Equal("Namespace"))
	g.Expect(objects[1].GetName()).To(Equal("b"))

	_, err = DecodeYAML([]byte("kind: [unclosed\n"))
	g.Expect(err).To(MatchError(ContainSubstring("document 1")))
}

// TestRewriteSamples rewrites the real config/samples/ and never puts a secret in a description.
func TestRewriteSamples(t *testing.T) {
	g := NewWithT(t)
	mautic := mautictest.NewTLSServer()
	t.Cleanup(mautic.Close)
	e := &Env{Mautic: mautic, MauticClient: mautic.NewClient("unit", true)}
	dir := filepath.Join("..", "..", "..", "config", "samples")
	objects, err := readSamples(dir)
	g.Expect(err).NotTo(HaveOccurred())

	result, err := e.rewriteSamples(dir, objects)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(result.Rewrites).To(HaveLen(3))
	for _, rewrite := range result.Rewrites {
		g.Expect(rewrite.String()).NotTo(ContainSubstring(e.MauticClient.Secret))
	}
	for _, obj := range objects {
		switch obj.GetKind() {
		case "MauticConnection":
			g.Expect(obj.GetName()).To(Equal(result.Connection.Name))
			url, _, _ := unstructured.NestedString(obj.Object, "spec", "url")
			g.Expect(url).To(Equal(mautic.URL()))
			ca, _, _ := unstructured.NestedString(obj.Object, "spec", "tls", "caSecretRef", "name")
			g.Expect(ca).To(Equal(CASecretName))
		case "Secret":
			secret, _, _ := unstructured.NestedString(obj.Object, "stringData", authv1alpha1.ClientSecretKey)
			// Compared without gomega's matchers, which would print the client secret on failure.
			g.Expect(secret == e.MauticClient.Secret).To(BeTrue(), "the client secret is the test server's") //nolint:ginkgolinter // Equal would print the secret
		}
	}
}

func TestApplyOrder(t *testing.T) {
	g := NewWithT(t)
	kinds := func(kind string) *unstructured.Unstructured {
		obj := &unstructured.Unstructured{}
		obj.SetKind(kind)
		return obj
	}
	g.Expect(applyOrder(kinds("Namespace"))).To(BeNumerically("<", applyOrder(kinds("Secret"))))
	g.Expect(applyOrder(kinds("Secret"))).To(BeNumerically("<", applyOrder(kinds("MauticConnection"))))
}
