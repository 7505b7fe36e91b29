// Package scheme holds the one runtime scheme of the project: the built-in Kubernetes kinds and
// MauticConnection. The manager, the kubectl plugin and the test harnesses all use it.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// New returns a scheme with the built-in kinds and the auth.mautic-operator.dev kinds.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(authv1alpha1.AddToScheme(s))
	return s
}
