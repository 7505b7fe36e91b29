package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// secretRefsIndex indexes MauticConnections by the names of the Secrets they read.
const secretRefsIndex = "spec.secretRefs"

// DefaultMaxConcurrentReconciles is how many connections are reconciled at once by default: the
// work waits on Mautic and the API server, not the CPU, and a slow Mautic host holds only as many
// workers as the per-host limit of the Mautic client lets through.
const DefaultMaxConcurrentReconciles = 16

// SetupOptions are the manager flags the controller needs.
type SetupOptions struct {
	// MaxConcurrentReconciles is how many connections are reconciled at once.
	MaxConcurrentReconciles int
	// Namespaces restricts the watch of credentials Secrets; empty means all namespaces.
	Namespaces []string
}

// SetupWithManager registers the controller. Token Secrets come from the manager's cache, which must
// be restricted to Secrets with the managed-by label (see ManagedSecretsCacheOptions). Credentials
// Secrets are the user's: a watch of their metadata keeps only each Secret's name and version
// (secretVersions), so that a change reconciles the connections that read the Secret while memory
// stays small however many unrelated Secrets exist.
func (r *MauticConnectionReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts SetupOptions) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &authv1alpha1.MauticConnection{}, secretRefsIndex, secretRefs); err != nil {
		return fmt.Errorf("indexing MauticConnections by Secret: %w", err)
	}

	secretClient, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("creating the client of the Secret version watch: %w", err)
	}
	r.secretWatch = newSecretVersions(secretClient, opts.Namespaces, r.connectionsReading)
	r.workers = max(opts.MaxConcurrentReconciles, 1)

	return ctrl.NewControllerManagedBy(mgr).
		For(&authv1alpha1.MauticConnection{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, refreshRequestChanged))).
		Owns(&corev1.Secret{}).
		WatchesRawSource(r.secretWatch).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(opts.MaxConcurrentReconciles, 1)}).
		Named("mauticconnection").
		Complete(r)
}

// refreshRequestChanged lets through an update that changed the refresh-requested-at annotation: of
// all annotation changes (GitOps tools write their own all the time), only that one matters.
var refreshRequestChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil {
			return false
		}
		key := authv1alpha1.RefreshRequestedAtAnnotation
		return e.ObjectOld.GetAnnotations()[key] != e.ObjectNew.GetAnnotations()[key]
	},
}

// ManagedSecretsCacheOptions restricts the manager's Secret cache to the Secrets the operator
// writes: selected by its labels, and, since anyone who may create Secrets can set those labels,
// kept whole only when a MauticConnection controls them and they are as small as a token Secret or
// a state Secret ever is. Any other Secret is cached as bare metadata, so that Secrets tenants label
// cannot make the manager's memory grow with their contents.
func ManagedSecretsCacheOptions() cache.ByObject {
	return cache.ByObject{Label: labelsSelectorManaged(), Transform: trimUnmanagedSecret}
}

// maxManagedSecretBytes bounds the data and annotations of a Secret the cache keeps whole: a token
// or state Secret holds a few kilobytes at most.
const maxManagedSecretBytes = 64 << 10

// trimUnmanagedSecret keeps a cached Secret whole when a MauticConnection controls it and it is
// small, and otherwise only its identity, labels and owner references.
func trimUnmanagedSecret(in any) (any, error) {
	secret, ok := in.(*corev1.Secret)
	if !ok {
		return in, nil
	}
	secret.ManagedFields = nil
	if controlledByConnection(secret) && secretBytes(secret) <= maxManagedSecretBytes {
		return secret, nil
	}
	return &corev1.Secret{
		TypeMeta: secret.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: secret.Name, Namespace: secret.Namespace, UID: secret.UID, ResourceVersion: secret.ResourceVersion,
			Labels: secret.Labels, OwnerReferences: secret.OwnerReferences,
		},
		Type: secret.Type,
	}, nil
}

// controlledByConnection reports whether a MauticConnection is the controller of secret.
func controlledByConnection(secret *corev1.Secret) bool {
	owner := metav1.GetControllerOf(secret)
	return owner != nil && owner.Kind == authv1alpha1.Kind && owner.APIVersion == authv1alpha1.GroupVersion.String()
}

// secretBytes is the size of a Secret's data and annotations.
func secretBytes(secret *corev1.Secret) int {
	size := 0
	for k, v := range secret.Data {
		size += len(k) + len(v)
	}
	for k, v := range secret.StringData {
		size += len(k) + len(v)
	}
	for k, v := range secret.Annotations {
		size += len(k) + len(v)
	}
	return size
}

// connectionsReading maps a Secret to the connections in its namespace that read it.
func (r *MauticConnectionReconciler) connectionsReading(ctx context.Context, secret types.NamespacedName) []reconcile.Request {
	connections := &authv1alpha1.MauticConnectionList{}
	if err := r.Client.List(ctx, connections, client.InNamespace(secret.Namespace),
		client.MatchingFields{secretRefsIndex: secret.Name}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the connections that read a Secret", "secret", secret)
		return nil
	}
	requests := make([]reconcile.Request, 0, len(connections.Items))
	for _, conn := range connections.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&conn)})
	}
	return requests
}

// secretRefs lists the Secrets a connection reads: credentials and CA.
func secretRefs(obj client.Object) []string {
	conn, ok := obj.(*authv1alpha1.MauticConnection)
	if !ok {
		return nil
	}
	refs := []string{conn.Spec.CredentialsSecretRef.Name}
	if tls := conn.Spec.TLS; tls != nil && tls.CASecretRef != nil {
		refs = append(refs, tls.CASecretRef.Name)
	}
	return refs
}
