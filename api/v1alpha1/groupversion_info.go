// Package v1alpha1 contains the MauticConnection API of the auth.mautic-operator.dev group.
// +kubebuilder:object:generate=true
// +groupName=auth.mautic-operator.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "auth.mautic-operator.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme. It depends on
	// k8s.io/apimachinery only, so that clients can import the API cheaply.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers MauticConnection and its list under GroupVersion.
func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &MauticConnection{}, &MauticConnectionList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
