package controller

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// The Secret cache keeps whole only the small Secrets a MauticConnection controls: any tenant can
// put the operator's labels on a Secret of theirs, but not make the manager hold its contents.
func TestTrimUnmanagedSecret(t *testing.T) {
	t.Parallel()
	conn := testConnection()
	controlled := func(data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: "crm-token", Namespace: testNamespace, ResourceVersion: "7",
				Labels:          map[string]string{authv1alpha1.ManagedByLabel: authv1alpha1.ManagedByValue, authv1alpha1.ConnectionLabel: "crm"},
				Annotations:     map[string]string{"example.com/note": "x"},
				OwnerReferences: []metav1.OwnerReference{*conn.ControllerReference()},
				ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "mautic-operator"}},
			},
			Data: data,
		}
	}
	tests := []struct {
		name     string
		secret   *corev1.Secret
		wantData bool
	}{
		{name: "a token Secret", secret: controlled(map[string][]byte{"access_token": []byte("abc")}), wantData: true},
		{name: "a large Secret a connection controls", secret: controlled(map[string][]byte{"blob": []byte(strings.Repeat("x", 70<<10))})},
		{name: "a labelled Secret nobody controls", secret: func() *corev1.Secret {
			s := controlled(map[string][]byte{"password": []byte("abc")})
			s.OwnerReferences = nil
			return s
		}()},
		{name: "a Secret another kind controls", secret: func() *corev1.Secret {
			s := controlled(map[string][]byte{"password": []byte("abc")})
			s.OwnerReferences[0].Kind = "Deployment"
			s.OwnerReferences[0].APIVersion = "apps/v1"
			return s
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			out, err := trimUnmanagedSecret(tc.secret.DeepCopy())
			g.Expect(err).NotTo(HaveOccurred())
			trimmed := out.(*corev1.Secret)
			g.Expect(trimmed.ManagedFields).To(BeEmpty())
			g.Expect(trimmed.Name).To(Equal(tc.secret.Name))
			g.Expect(trimmed.ResourceVersion).To(Equal("7"))
			g.Expect(trimmed.Labels).To(Equal(tc.secret.Labels))
			if tc.wantData {
				g.Expect(trimmed.Data).To(Equal(tc.secret.Data))
				g.Expect(trimmed.Annotations).To(Equal(tc.secret.Annotations))
			} else {
				g.Expect(trimmed.Data).To(BeEmpty())
				g.Expect(trimmed.Annotations).To(BeEmpty())
			}
		})
	}
}

// The cache selects Secrets by an operator-specific label as well as the common managed-by label.
func TestManagedSecretsSelector(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	selector := labelsSelectorManaged()
	g.Expect(selector.Matches(labels.Set{authv1alpha1.ManagedByLabel: authv1alpha1.ManagedByValue, authv1alpha1.ConnectionLabel: "crm"})).To(BeTrue())
	g.Expect(selector.Matches(labels.Set{authv1alpha1.ManagedByLabel: authv1alpha1.ManagedByValue})).To(BeFalse(),
		"app.kubernetes.io/managed-by alone is a common label")
}

func TestClipNote(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	g.Expect(clipNote("short")).To(Equal("short"))
	long := strings.Repeat("é", 600) // 1200 bytes
	clipped := clipNote(long)
	g.Expect(len(clipped)).To(BeNumerically("<=", maxEventNoteBytes))
	g.Expect(clipped).To(HaveSuffix("…"))
	g.Expect(strings.TrimSuffix(clipped, "…")).To(Equal(strings.Repeat("é", len(strings.TrimSuffix(clipped, "…"))/2)), "cut on a rune boundary")
}
