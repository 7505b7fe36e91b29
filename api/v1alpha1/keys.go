package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every Secret key, label, annotation and owner reference the operator and the kubectl plugin
// read or write is defined here, so that both use the same ones.

// Kind is the kind of a MauticConnection, as it appears in owner references and events.
const Kind = "MauticConnection"

// Suffixes of the names of the Secrets the operator writes (see TokenSecretName and StateSecretName).
const (
	// TokenSecretSuffix names the default token Secret: "<name>-token".
	TokenSecretSuffix = "-token"
	// StateSecretSuffix names the state Secret of an AuthorizationCode connection: "<name>-oauth-state".
	StateSecretSuffix = "-oauth-state"
)

// ControllerReference returns the owner reference, with controller and blockOwnerDeletion set,
// that every Secret the operator writes for c carries.
func (c *MauticConnection) ControllerReference() *metav1.OwnerReference {
	return metav1.NewControllerRef(c, GroupVersion.WithKind(Kind))
}

// Keys read from the credentials Secret.
const (
	// ClientIDKey holds the OAuth2 client id (ClientCredentials).
	ClientIDKey = "client_id"
	// ClientSecretKey holds the OAuth2 client secret (ClientCredentials).
	ClientSecretKey = "client_secret"
	// UsernameKey holds the Mautic username (Basic).
	UsernameKey = "username"
	// PasswordKey holds the Mautic password (Basic, Password).
	PasswordKey = "password"
	// RefreshTokenKey in the credentials Secret seeds the refresh token of an AuthorizationCode connection
	// once (a changed value seeds again); in the state Secret it holds the current refresh token.
	RefreshTokenKey = "refresh_token"
	// CACertKey holds the PEM bundle in the Secret named by spec.tls.caSecretRef.
	CACertKey = "ca.crt"
)

// Keys of the token Secret that workloads mount.
const (
	// AccessTokenKey holds the bare access token (absent for Basic).
	AccessTokenKey = "access_token"
	// AuthorizationKey holds the full Authorization header value: "Bearer <token>" or "Basic <base64>".
	AuthorizationKey = "authorization"
	// TokenTypeKey holds TokenTypeBearer or TokenTypeBasic.
	TokenTypeKey = "token_type"
	// ExpiresAtKey holds the token's expiry in RFC 3339 UTC (absent for Basic).
	ExpiresAtKey = "expires_at"
	// URLKey holds the normalised Mautic base URL.
	URLKey = "url"
)

// Values of the token Secret's TokenTypeKey.
const (
	// TokenTypeBearer: AuthorizationKey holds "Bearer <access token>".
	TokenTypeBearer = "bearer"
	// TokenTypeBasic: AuthorizationKey holds "Basic <base64 of username:password>".
	TokenTypeBasic = "basic"
)

// Labels and annotations the operator reads or writes.
const (
	// ManagedByLabel marks every Secret the operator writes; the manager caches only Secrets carrying it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel.
	ManagedByValue = "mautic-operator"
	// ConnectionLabel names the MauticConnection that owns a Secret.
	ConnectionLabel = "auth.mautic-operator.dev/connection"
	// CredentialsOptInLabel, set to "true" on a credentials Secret, allows MauticConnections to use it
	// when the manager runs with --require-credentials-label (multi-tenant clusters).
	CredentialsOptInLabel = "auth.mautic-operator.dev/credentials"
	// RefreshRequestedAtAnnotation on a MauticConnection requests a new token; any new value triggers one refresh.
	RefreshRequestedAtAnnotation = "auth.mautic-operator.dev/refresh-requested-at"
	// TokenIssuedAtAnnotation on the token Secret records when the published token was issued
	// (RFC 3339 with nanoseconds); with the expires_at key it gives the token's renewal time.
	TokenIssuedAtAnnotation = "auth.mautic-operator.dev/issued-at"
	// CredentialsHashAnnotation on the token Secret records the digest of the credentials the
	// token was obtained with; a different digest means the credentials changed.
	CredentialsHashAnnotation = "auth.mautic-operator.dev/credentials-hash"
	// ConnectionHashAnnotation on the token Secret records the digest of the spec fields that
	// decide which token is issued (grant, URL, token path, scopes).
	ConnectionHashAnnotation = "auth.mautic-operator.dev/connection-hash"
	// TokenHashAnnotation on the token Secret records the digest of its data keys, so that an
	// edit of any of them is noticed.
	TokenHashAnnotation = "auth.mautic-operator.dev/token-hash"
	// RefreshRequestAnnotation on the token Secret records the connection's
	// RefreshRequestedAtAnnotation value when the token was obtained: that request is handled,
	// even while the status that says so is not yet in the cache.
	RefreshRequestAnnotation = "auth.mautic-operator.dev/refresh-request"
	// AppliedHashAnnotation on the token Secret records the digest of everything the operator
	// applied to it (data, labels, annotations), so that drift is noticed by comparing one value.
	AppliedHashAnnotation = "auth.mautic-operator.dev/applied-hash"
	// SecretVersionsAnnotation on the token Secret records the UIDs and resourceVersions of the
	// credentials and CA Secrets the token was obtained with: while the watch of Secret versions shows the
	// same, a restarted manager trusts the token without reading those Secrets.
	SecretVersionsAnnotation = "auth.mautic-operator.dev/secret-versions"
	// AuthorizedAtAnnotation on the state Secret records when a person last authorized the connection.
	AuthorizedAtAnnotation = "auth.mautic-operator.dev/authorized-at"
	// SeedHashAnnotation on the state Secret records the digest of the credentials Secret's
	// refresh_token seed already used (or already superseded by an authorization), so that an
	// unchanged seed is ignored and a changed one seeds again.
	SeedHashAnnotation = "auth.mautic-operator.dev/seed-hash"
	// RefreshTokenIssuedAtAnnotation on the state Secret records when the stored refresh token was issued.
	RefreshTokenIssuedAtAnnotation = "auth.mautic-operator.dev/refresh-token-issued-at"
	// RejectedHashAnnotation on the state Secret records the digest of a refresh token Mautic
	// refused, so that it is never sent again.
	RejectedHashAnnotation = "auth.mautic-operator.dev/rejected-token-hash"
	// RefreshClaimAnnotation on the state Secret marks the stored refresh token as being spent:
	// "<holder> <RFC 3339 time>". Its age is judged by the time the API server recorded for the
	// write (the managed fields of RefreshClaimFieldManager), not by the time in the value.
	RefreshClaimAnnotation = "auth.mautic-operator.dev/refresh-claim"
	// RefreshClaimFieldManager is the field manager of the writes that set RefreshClaimAnnotation.
	RefreshClaimFieldManager = "mautic-operator-claim"
	// AmbiguousRefreshAnnotation on the state Secret records that a refresh with the stored token
	// ended without a usable answer (a timeout, a dropped connection, an unreadable answer):
	// "<token digest> <RFC 3339 time> <cause>". Mautic may have rotated the token then.
	AmbiguousRefreshAnnotation = "auth.mautic-operator.dev/ambiguous-refresh"
)
