package controller

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// credentialsMemory remembers, per connection, the credentials and CA last read and the versions of
// the Secrets they came from, so that a reconcile reads those Secrets from the API server only when
// the watch of Secret versions shows them changed: a steady-state reconcile makes no API request.
type credentialsMemory struct{ keyed[rememberedCredentials] }

// rememberedCredentials are one connection's credentials as last read.
type rememberedCredentials struct {
	uid         types.UID
	versions    string
	credentials credentials
	hash        string
	caCert      []byte
}

func (m *credentialsMemory) get(key types.NamespacedName, uid types.UID) (rememberedCredentials, bool) {
	entry, ok := m.load(key)
	return entry, ok && entry.uid == uid
}

func (m *credentialsMemory) put(key types.NamespacedName, entry rememberedCredentials) {
	m.store(key, entry)
}

// caMemory remembers the bundle of each CA Secret last read, by the Secret's version, for every
// connection that names it: connections sharing a CA Secret read it once per change, not once each,
// and share one copy of its bytes. An entry is a few kilobytes per CA Secret ever referenced.
type caMemory struct{ keyed[rememberedCA] }

// rememberedCA is a CA Secret's bundle as read at version.
type rememberedCA struct {
	version string
	bundle  []byte
}

func (m *caMemory) get(key types.NamespacedName, version string) ([]byte, bool) {
	entry, ok := m.load(key)
	return entry.bundle, ok && entry.version == version
}

func (m *caMemory) put(key types.NamespacedName, version string, bundle []byte) {
	m.store(key, rememberedCA{version: version, bundle: bundle})
}

// secretVersionOf identifies one state of a Secret: "<uid>:<resourceVersion>"; "-" for none.
func secretVersionOf(obj metav1.Object) string {
	if obj == nil || obj.GetUID() == "" {
		return "-"
	}
	return string(obj.GetUID()) + ":" + obj.GetResourceVersion()
}

// watchedSecret looks a Secret up in the watch of Secret versions, which lists every Secret the
// manager may read, and returns its version; a NotFound error when the watch has no Secret of that
// name, another error when it cannot tell (not listed yet, or no watch: unit tests).
func (r *MauticConnectionReconciler) watchedSecret(namespace, name string) (string, error) {
	if r.secretWatch == nil {
		return "", errSecretsNotListed
	}
	return r.secretWatch.version(namespace, name)
}

// watchedVersion returns the version of a Secret as the watch of Secret versions has it; false when the watch
// does not know it (not synced, missing, or no watch).
func (r *MauticConnectionReconciler) watchedVersion(namespace, name string) (string, bool) {
	version, err := r.watchedSecret(namespace, name)
	return version, err == nil
}

// watchedAbsent reports whether the watch of Secret versions has no Secret of that name: false when it has
// one or cannot tell.
func (r *MauticConnectionReconciler) watchedAbsent(namespace, name string) bool {
	_, err := r.watchedSecret(namespace, name)
	return apierrors.IsNotFound(err)
}

// cachedSecretVersions returns the versions of the connection's credentials and CA Secrets as the
// watch of Secret versions has them, in the form s.secretVersions takes after a read; false when the watch
// does not know one of them (not synced, or missing), so that the caller reads them.
func (r *MauticConnectionReconciler) cachedSecretVersions(s *scope) (string, bool) {
	version := func(name string) (string, bool) { return r.watchedVersion(s.conn.Namespace, name) }
	versions, ok := version(s.conn.Spec.CredentialsSecretRef.Name)
	if !ok {
		return "", false
	}
	if tls := s.conn.Spec.TLS; tls != nil && tls.CASecretRef != nil {
		ca, ok := version(tls.CASecretRef.Name)
		if !ok {
			return "", false
		}
		versions += "/" + ca
	}
	return versions, true
}

// credentialsUnchanged fills the scope's credentials without reading a Secret when the metadata
// watch shows the credentials and CA Secrets as they were last read, or, after a restart, as they
// were when the published token was obtained (the credentials themselves are then read only if a
// token is needed). It reports false when they must be read.
func (r *MauticConnectionReconciler) credentialsUnchanged(ctx context.Context, s *scope) bool {
	versions, ok := r.cachedSecretVersions(s)
	if !ok {
		return false
	}
	key := client.ObjectKeyFromObject(s.conn)
	if remembered, ok := r.credentialsMemory.get(key, s.conn.UID); ok && remembered.versions == versions {
		s.credentials, s.credentialsHash, s.caCert, s.secretVersions = remembered.credentials, remembered.hash, remembered.caCert, versions
		return true
	}
	// A token Secret the operator published is in the cache; one that is not cannot be trusted
	// anyway, so there is no uncached read here (reconcileToken tells a missing Secret from a foreign one).
	live := &corev1.Secret{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.conn.Namespace, Name: s.conn.TokenSecretName()}, live); err != nil ||
		!metav1.IsControlledBy(live, s.conn) {
		return false
	}
	if published := issuedFromSecret(live); published != nil && published.SecretVersions == versions && published.CredentialsHash != "" {
		s.credentialsHash, s.secretVersions, s.credentialsDeferred = published.CredentialsHash, versions, true
		return true
	}
	return false
}
