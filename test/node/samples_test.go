package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// applySamples applies config/samples in namespace, apart from the scenario's namespace apps as a user would after editing
// them: the credentials Secret with a client of site in place of the placeholders, and the
// connection with site's URL and, since the site's certificate comes from a private CA, that
// CA's Secret. It waits until the connection is Ready and its token Secret carries the sample's
// template label.
func (b *bed) applySamples(t *testing.T, namespace, apps string, site *mauticSite) {
	t.Helper()
	b.createNamespace(t, namespace)
	ca := &corev1.Secret{}
	must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: apps, Name: caSecretName}, ca), "reading the Mautic CA Secret")
	must(t, b.client.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: caSecretName}, Data: ca.Data,
	}), "copying the Mautic CA Secret")

	credentials := &corev1.Secret{}
	b.readSample(t, "mautic-api-secret.yaml", credentials)
	app := site.newClient(t, "samples", true)
	credentials.Namespace = namespace
	credentials.StringData[authv1alpha1.ClientIDKey] = app.ID
	credentials.StringData[authv1alpha1.ClientSecretKey] = app.Secret
	must(t, b.client.Create(t.Context(), credentials), "creating the sample credentials Secret")

	conn := &authv1alpha1.MauticConnection{}
	b.readSample(t, "auth_v1alpha1_mauticconnection.yaml", conn)
	conn.Namespace = namespace
	conn.Spec.URL = site.URL
	conn.Spec.TLS = &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: caSecretName}}
	must(t, b.client.Create(t.Context(), conn), "creating the sample MauticConnection")
	b.waitConnectionReady(t, client.ObjectKeyFromObject(conn))

	token := &corev1.Secret{}
	must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: conn.Spec.TokenSecret.Name}, token), "reading the sample's token Secret")
	if !strings.HasPrefix(string(token.Data[authv1alpha1.AuthorizationKey]), "Bearer ") {
		t.Errorf("the sample's token Secret %s has no Bearer authorization", token.Name)
	}
	if conn.Spec.TokenSecret.Template == nil || len(conn.Spec.TokenSecret.Template.Labels) == 0 {
		t.Fatalf("the sample connection has no token Secret template labels to check")
	}
	for key, value := range conn.Spec.TokenSecret.Template.Labels {
		if token.Labels[key] != value {
			t.Errorf("the sample's token Secret %s lacks the template label %s=%s: %v", token.Name, key, value, token.Labels)
		}
	}
	t.Logf("config/samples applied in %s: %s Ready, token Secret %s published", namespace, conn.Name, token.Name)
}

// readSample decodes config/samples/<name> into obj.
func (b *bed) readSample(t *testing.T, name string, obj client.Object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.root, "config", "samples", name))
	must(t, err, "reading the sample "+name)
	must(t, yaml.UnmarshalStrict(data, obj), "decoding the sample "+name)
}
