package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RandomSuffix returns eight random hex digits, to keep the names of parallel tests apart.
func RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateNamespace creates a namespace named prefix and a random suffix, for one test, and returns
// its name. It is left in place when the test ends: envtest has no namespace controller to empty it.
func (cp *ControlPlane) CreateNamespace(t TB, prefix string) string {
	t.Helper()
	name := prefix + RandomSuffix()
	if err := cp.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}
