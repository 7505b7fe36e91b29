package v1alpha1

// Condition types, following the kstatus conventions that kubectl wait, Flux and Argo CD read.
const (
	// ReadyCondition is True while a valid token is published in the token Secret.
	ReadyCondition = "Ready"
	// ReconcilingCondition is True while a transient failure is being retried (the current token stays
	// published); absent otherwise.
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True when a person must act (fix the spec, the credentials Secret or Mautic's settings).
	StalledCondition = "Stalled"
)

// Reasons on the Ready condition when it is True, and on Reconciling while a token is being obtained.
const (
	// TokenValidReason: the published token is valid and will be refreshed at status.renewAt.
	TokenValidReason = "TokenValid"
	// CredentialsVerifiedReason: Basic credentials were accepted by the Mautic API.
	CredentialsVerifiedReason = "CredentialsVerified"
	// ProgressingReason: the operator is working towards a first token.
	ProgressingReason = "Progressing"
	// SuspendedReason: spec.suspend is true; nothing is refreshed.
	SuspendedReason = "Suspended"
)

// Reasons a new token is requested; they appear on events and on the Reconciling condition.
const (
	// NoTokenReason: no token has been issued for this connection yet.
	NoTokenReason = "NoToken"
	// TokenSecretModifiedReason: the token Secret lost or changed its token and nothing valid is remembered.
	TokenSecretModifiedReason = "TokenSecretModified"
	// CredentialsChangedReason: the credentials Secret changed since the token was issued.
	CredentialsChangedReason = "CredentialsChanged"
	// ConnectionChangedReason: spec.url or spec.grant changed since the token was issued.
	ConnectionChangedReason = "ConnectionChanged"
	// RefreshRequestedReason: a refresh was requested with the refresh-requested-at annotation.
	RefreshRequestedReason = "RefreshRequested"
	// TokenExpiredReason: the published token has expired.
	TokenExpiredReason = "TokenExpired"
	// RenewalDueReason: the token reached status.renewAt.
	RenewalDueReason = "RenewalDue"
)

// Reasons for transient failures (Reconciling=True, retried with backoff).
const (
	// RefreshFailedReason: Mautic could not be reached or answered 5xx, 429, a timeout or HTML; retrying.
	RefreshFailedReason = "RefreshFailed"
)

// Reasons for failures a person must fix (Stalled=True, Ready=False, no retry loop).
const (
	// CredentialsSecretNotFoundReason: spec.credentialsSecretRef names a Secret that does not exist.
	CredentialsSecretNotFoundReason = "CredentialsSecretNotFound"
	// CredentialsNotOptedInReason: the manager requires the CredentialsOptInLabel on credentials
	// Secrets, and this one does not carry it.
	CredentialsNotOptedInReason = "CredentialsNotOptedIn"
	// CredentialsKeyMissingReason: the credentials Secret lacks a key the grant needs.
	CredentialsKeyMissingReason = "CredentialsKeyMissing"
	// InvalidClientReason: Mautic refused the client id or secret (invalid_client).
	InvalidClientReason = "InvalidClientCredentials"
	// GrantNotAllowedReason: the Mautic client may not use this grant (unauthorized_client).
	GrantNotAllowedReason = "GrantNotAllowed"
	// APIDisabledReason: the Mautic API is disabled in Mautic's configuration (api_disabled).
	APIDisabledReason = "APIDisabled"
	// BasicAuthDisabledReason: Mautic refused HTTP Basic auth (403): it is off in Mautic's API settings.
	BasicAuthDisabledReason = "BasicAuthDisabled"
	// InvalidBasicCredentialsReason: Mautic refused the username or password (401).
	InvalidBasicCredentialsReason = "InvalidBasicCredentials"
	// AccessDeniedReason: Mautic's API refused the new token (401/403) during verification.
	AccessDeniedReason = "AccessDenied"
	// EndpointNotFoundReason: the token or API endpoint answered 404: spec.url is not the Mautic site URL.
	EndpointNotFoundReason = "EndpointNotFound"
	// InvalidSpecReason: the spec breaks a rule of the CRD's validation (stored before the rule existed).
	InvalidSpecReason = "InvalidSpec"
	// InvalidURLReason: spec.url is not a usable Mautic site URL.
	InvalidURLReason = "InvalidURL"
	// ForbiddenAddressReason: spec.url resolves to a link-local or cloud metadata address.
	ForbiddenAddressReason = "ForbiddenAddress"
	// TLSErrorReason: Mautic's certificate is not trusted; set spec.tls.caSecretRef.
	TLSErrorReason = "TLSError"
	// CASecretInvalidReason: the Secret named by spec.tls.caSecretRef is missing or holds no PEM certificate.
	CASecretInvalidReason = "CASecretInvalid"
	// RequestRejectedReason: Mautic rejected the request for another reason it named.
	RequestRejectedReason = "RequestRejected"
	// ReauthorizationRequiredReason: Mautic refused the refresh token (invalid_grant); a person must run
	// `kubectl mautic authorize` again, or change the refresh_token seed.
	ReauthorizationRequiredReason = "ReauthorizationRequired"
	// AuthorizationRequiredReason: an AuthorizationCode connection has no refresh token yet.
	AuthorizationRequiredReason = "AuthorizationRequired"
	// RefreshAnswerUnusableReason: Mautic answered a refresh with success, so it has probably rotated
	// the refresh token, but the answer could not be read and held no refresh token to recover; a
	// person must check the server (or proxy) and authorize again.
	RefreshAnswerUnusableReason = "RefreshAnswerUnusable"
	// TokenSecretConflictReason: a Secret with the token Secret's name exists and is not owned by this connection.
	TokenSecretConflictReason = "TokenSecretConflict"
)

// Reasons of events that have no condition of their own.
const (
	// TokenSecretRepairedReason: a deleted or edited token Secret was restored from the current token.
	TokenSecretRepairedReason = "TokenSecretRepaired"
)
