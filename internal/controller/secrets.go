package controller

import (
	"encoding/json"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// issuedToken is a token the operator obtained and publishes: the Secret's content plus the facts
// the refresh policy needs.
type issuedToken struct {
	token.Issued
	// AccessToken is the bare token; empty for Basic.
	AccessToken string
	// Authorization is the full Authorization header value.
	Authorization string
	// TokenType is authv1alpha1.TokenTypeBearer or authv1alpha1.TokenTypeBasic.
	TokenType string
	// URL is the normalised Mautic base URL.
	URL string
	// RefreshRequest is the refresh-requested-at annotation's value when the token was obtained:
	// that request is handled, even while the status that says so is not yet in the cache.
	RefreshRequest string
	// SecretVersions identifies the credentials and CA Secrets as they were when the token was
	// obtained (see secretVersionOf).
	SecretVersions string
}

// valid reports whether the token can still be used at now.
func (t *issuedToken) valid(now time.Time) bool {
	return t != nil && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// hashOf returns a short, stable, non-reversible digest of parts (see refreshstate.Digest): the
// same digest names a refresh token in the state Secret's annotations and the token's inputs here.
func hashOf(parts ...string) string {
	return refreshstate.Digest(parts...)
}

// tokenHash digests every key of the token Secret's data, so that an edit of any of them is noticed.
func tokenHash(data map[string][]byte) string {
	return hashOf(string(data[authv1alpha1.AuthorizationKey]), string(data[authv1alpha1.AccessTokenKey]),
		string(data[authv1alpha1.TokenTypeKey]), string(data[authv1alpha1.ExpiresAtKey]), string(data[authv1alpha1.URLKey]))
}

// tokenSecretData returns the keys workloads read. It never holds a refresh token or client secret.
func tokenSecretData(t *issuedToken) map[string][]byte {
	data := map[string][]byte{
		authv1alpha1.AuthorizationKey: []byte(t.Authorization),
		authv1alpha1.TokenTypeKey:     []byte(t.TokenType),
		authv1alpha1.URLKey:           []byte(t.URL),
	}
	if t.AccessToken != "" {
		data[authv1alpha1.AccessTokenKey] = []byte(t.AccessToken)
	}
	if !t.ExpiresAt.IsZero() {
		data[authv1alpha1.ExpiresAtKey] = []byte(t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return data
}

// tokenSecretLabels returns the template's labels with the operator's own labels on top.
func tokenSecretLabels(conn *authv1alpha1.MauticConnection) map[string]string {
	labels := map[string]string{}
	if tmpl := secretTemplate(conn); tmpl != nil {
		for k, v := range tmpl.Labels {
			labels[k] = v
		}
	}
	labels[authv1alpha1.ManagedByLabel] = authv1alpha1.ManagedByValue
	labels[authv1alpha1.ConnectionLabel] = conn.Name
	return labels
}

// tokenSecretAnnotations returns the template's annotations with the operator's bookkeeping on top.
func tokenSecretAnnotations(conn *authv1alpha1.MauticConnection, t *issuedToken) map[string]string {
	annotations := map[string]string{}
	if tmpl := secretTemplate(conn); tmpl != nil {
		for k, v := range tmpl.Annotations {
			// The operator's own bookkeeping cannot be set from the template.
			if !strings.HasPrefix(k, authv1alpha1.GroupVersion.Group+"/") {
				annotations[k] = v
			}
		}
	}
	annotations[authv1alpha1.TokenIssuedAtAnnotation] = t.IssuedAt.UTC().Format(time.RFC3339Nano)
	annotations[authv1alpha1.CredentialsHashAnnotation] = t.CredentialsHash
	annotations[authv1alpha1.ConnectionHashAnnotation] = t.ConnectionHash
	annotations[authv1alpha1.TokenHashAnnotation] = tokenHash(tokenSecretData(t))
	if t.RefreshRequest != "" {
		annotations[authv1alpha1.RefreshRequestAnnotation] = t.RefreshRequest
	}
	if t.SecretVersions != "" {
		annotations[authv1alpha1.SecretVersionsAnnotation] = t.SecretVersions
	}
	return annotations
}

func secretTemplate(conn *authv1alpha1.MauticConnection) *authv1alpha1.SecretTemplate {
	if conn.Spec.TokenSecret == nil {
		return nil
	}
	return conn.Spec.TokenSecret.Template
}

// tokenSecretApply builds the server-side apply configuration of the token Secret: its data, the
// operator's labels, the template, and a controller owner reference to the connection. The
// applied-hash annotation summarises all of it, so that a changed template or a drifted Secret is
// noticed by comparing one value.
func tokenSecretApply(conn *authv1alpha1.MauticConnection, t *issuedToken) *corev1ac.SecretApplyConfiguration {
	data := tokenSecretData(t)
	labels := tokenSecretLabels(conn)
	annotations := tokenSecretAnnotations(conn, t)
	annotations[authv1alpha1.AppliedHashAnnotation] = appliedHash(data, labels, annotations)

	return corev1ac.Secret(conn.TokenSecretName(), conn.Namespace).
		WithType(corev1.SecretTypeOpaque).
		WithLabels(labels).
		WithAnnotations(annotations).
		WithData(data).
		WithOwnerReferences(ownerReferenceApply(conn.ControllerReference()))
}

// ownerReferenceApply turns an owner reference into its apply configuration.
func ownerReferenceApply(ref *metav1.OwnerReference) *metav1ac.OwnerReferenceApplyConfiguration {
	apply := metav1ac.OwnerReference().WithAPIVersion(ref.APIVersion).WithKind(ref.Kind).WithName(ref.Name).WithUID(ref.UID)
	if ref.Controller != nil {
		apply.WithController(*ref.Controller)
	}
	if ref.BlockOwnerDeletion != nil {
		apply.WithBlockOwnerDeletion(*ref.BlockOwnerDeletion)
	}
	return apply
}

// appliedHash digests what the operator applies to the token Secret (JSON encodes maps in key order).
func appliedHash(data map[string][]byte, labels, annotations map[string]string) string {
	encoded, _ := json.Marshal([]any{data, labels, annotations}) //nolint:errchkjson // maps of strings always encode
	return hashOf(string(encoded))
}

// tokenSecretCurrent reports whether the live token Secret holds exactly what the operator would
// apply: the same data, labels, annotations and controller owner reference.
func tokenSecretCurrent(live *corev1.Secret, conn *authv1alpha1.MauticConnection, t *issuedToken) bool {
	if live == nil || !metav1.IsControlledBy(live, conn) {
		return false
	}
	data := tokenSecretData(t)
	labels := tokenSecretLabels(conn)
	annotations := tokenSecretAnnotations(conn, t)
	want := appliedHash(data, labels, annotations)
	if live.Annotations[authv1alpha1.AppliedHashAnnotation] != want || !tokenDataEqual(live, t) {
		return false
	}
	for k, v := range labels {
		if live.Labels[k] != v {
			return false
		}
	}
	for k, v := range annotations {
		if live.Annotations[k] != v {
			return false
		}
	}
	return true
}

// issuedFromSecret rebuilds what the operator published from the token Secret it wrote, so that a
// restarted manager trusts a valid token instead of asking for a new one. It returns nil when the
// Secret does not hold a token the operator wrote intact (a key edited or removed).
func issuedFromSecret(live *corev1.Secret) *issuedToken {
	if live == nil {
		return nil
	}
	annotations := live.Annotations
	authorization := string(live.Data[authv1alpha1.AuthorizationKey])
	if authorization == "" || annotations[authv1alpha1.TokenHashAnnotation] != tokenHash(live.Data) {
		return nil
	}
	issuedAt, err := time.Parse(time.RFC3339Nano, annotations[authv1alpha1.TokenIssuedAtAnnotation])
	if err != nil {
		return nil
	}
	t := &issuedToken{
		Issued: token.Issued{
			IssuedAt:        issuedAt,
			CredentialsHash: annotations[authv1alpha1.CredentialsHashAnnotation],
			ConnectionHash:  annotations[authv1alpha1.ConnectionHashAnnotation],
		},
		AccessToken:    string(live.Data[authv1alpha1.AccessTokenKey]),
		Authorization:  authorization,
		TokenType:      string(live.Data[authv1alpha1.TokenTypeKey]),
		URL:            string(live.Data[authv1alpha1.URLKey]),
		RefreshRequest: annotations[authv1alpha1.RefreshRequestAnnotation],
		SecretVersions: annotations[authv1alpha1.SecretVersionsAnnotation],
	}
	switch t.TokenType {
	case authv1alpha1.TokenTypeBearer:
		if t.AccessToken == "" || authorization != "Bearer "+t.AccessToken {
			return nil
		}
		expiresAt, err := time.Parse(time.RFC3339, string(live.Data[authv1alpha1.ExpiresAtKey]))
		if err != nil {
			return nil
		}
		t.ExpiresAt = expiresAt
	case authv1alpha1.TokenTypeBasic:
	default:
		return nil
	}
	return t
}

// tokenDataEqual reports whether the live Secret's data holds exactly the token's keys.
func tokenDataEqual(live *corev1.Secret, t *issuedToken) bool {
	want := tokenSecretData(t)
	for k, v := range want {
		if string(live.Data[k]) != string(v) {
			return false
		}
	}
	for _, k := range []string{authv1alpha1.AccessTokenKey, authv1alpha1.ExpiresAtKey} {
		if _, ok := want[k]; !ok && len(live.Data[k]) > 0 {
			return false
		}
	}
	return true
}

// labelsSelectorManaged selects the Secrets the operator writes.
func labelsSelectorManaged() labels.Selector {
	managed, err := labels.NewRequirement(authv1alpha1.ManagedByLabel, selection.Equals, []string{authv1alpha1.ManagedByValue})
	if err != nil {
		panic(err) // constant keys and values
	}
	connection, err := labels.NewRequirement(authv1alpha1.ConnectionLabel, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*managed, *connection)
}
