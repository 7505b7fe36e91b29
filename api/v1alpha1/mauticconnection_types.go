package v1alpha1

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Grant is how the operator authenticates to Mautic.
// +kubebuilder:validation:Enum=ClientCredentials;AuthorizationCode;Basic;Password
type Grant string

const (
	// GrantClientCredentials uses OAuth2 client credentials (a Mautic API client created by an admin, Mautic 4.0+).
	GrantClientCredentials Grant = "ClientCredentials"
	// GrantAuthorizationCode uses a refresh token obtained once by a person (kubectl mautic authorize) and
	// rotated on every refresh; the operator keeps it in the state Secret.
	GrantAuthorizationCode Grant = "AuthorizationCode"
	// GrantBasic uses HTTP Basic auth with a Mautic username and password (Basic auth enabled in Mautic's API settings).
	GrantBasic Grant = "Basic"
	// GrantPassword uses the OAuth2 resource-owner password grant, for OAuth2 servers other than Mautic
	// (Mautic refuses it).
	GrantPassword Grant = "Password"
)

// Duration is a Go duration string such as "10m" or "336h". It is a string rather than a
// metav1.Duration so that an object stored before its validation existed still decodes: one bad
// value then stalls its own connection instead of stopping the manager's cache for every namespace.
// +kubebuilder:validation:MaxLength=32
type Duration string

// Parse returns the duration, or an error that names the expected form.
func (d Duration) Parse() (time.Duration, error) {
	parsed, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration in hours, minutes and seconds such as 10m or 336h", string(d))
	}
	return parsed, nil
}

// SecretReference names a Secret in the MauticConnection's own namespace.
type SecretReference struct {
	// name is the Secret's name, in the same namespace as the MauticConnection.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// SecretTemplate holds metadata copied onto the token Secret.
type SecretTemplate struct {
	// labels are added to the token Secret. Changing them never mints a new token.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations are added to the token Secret. Changing them never mints a new token.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TokenSecretSpec describes the Secret workloads mount.
type TokenSecretSpec struct {
	// name of the token Secret; defaults to "<metadata.name>-token".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name,omitempty"`
	// template holds labels and annotations for the token Secret.
	// +optional
	Template *SecretTemplate `json:"template,omitempty"`
}

// RefreshSpec says how early a token is renewed. Set at most one field; the default is renewBeforePercentage 33.
// +kubebuilder:validation:XValidation:rule="!(has(self.renewBefore) && has(self.renewBeforePercentage))",message="set either spec.refresh.renewBefore or spec.refresh.renewBeforePercentage, not both"
type RefreshSpec struct {
	// renewBefore refreshes the token this long before it expires, e.g. 10m. When it is not shorter
	// than the token's lifetime, the default percentage applies instead.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches(r'^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$')",message="spec.refresh.renewBefore must be a duration in hours, minutes and seconds such as 10m or 1h30m (days are not a unit: write 24h)"
	// +kubebuilder:validation:XValidation:rule="!self.matches(r'^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || (duration(self) >= duration('1s') && duration(self) <= duration('8760h'))",message="spec.refresh.renewBefore must be between 1s and 8760h (one year)"
	RenewBefore *Duration `json:"renewBefore,omitempty"`
	// renewBeforePercentage refreshes the token when this percentage of its lifetime is left (1 to 90; default 33).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=90
	RenewBeforePercentage *int32 `json:"renewBeforePercentage,omitempty"`
}

// VerifySpec proves a new token works against Mautic's API.
type VerifySpec struct {
	// path is an authenticated API path called with the new token; default /api/users/self (needs no permission).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/api/') && !self.contains('?') && !self.contains('#')",message="spec.verify.path must be a Mautic API path such as /api/users/self, without query or fragment"
	Path string `json:"path,omitempty"`
}

// TLSSpec adds trust for Mautic sites whose certificate is not signed by a public CA.
type TLSSpec struct {
	// caSecretRef names a Secret whose ca.crt key holds PEM certificates trusted in addition to the system roots.
	// +optional
	CASecretRef *SecretReference `json:"caSecretRef,omitempty"`
}

// MauticConnectionSpec is the desired connection to one Mautic site.
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('https://') || (has(self.allowInsecureHTTP) && self.allowInsecureHTTP)",message="spec.url uses plain http: use an https:// URL, or set spec.allowInsecureHTTP: true to send credentials unencrypted"
type MauticConnectionSpec struct {
	// url is the Mautic site URL, e.g. https://mautic.example.com. A trailing "/" is tolerated; add
	// "/index.php" for sites without URL rewriting.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="spec.url must be an absolute http(s) URL such as https://mautic.example.com"
	// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="spec.url must not contain a user or password; put credentials in the credentials Secret"
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="spec.url must not have a query or fragment; give the site URL only, e.g. https://mautic.example.com"
	URL string `json:"url"`

	// grant is how the operator authenticates: ClientCredentials (default; keys client_id and
	// client_secret), AuthorizationCode (client_id and client_secret; the refresh token comes from
	// `kubectl mautic authorize` or a refresh_token key), Basic (username and password), or Password
	// (client_id, client_secret, username and password; OAuth2 servers other than Mautic).
	// +optional
	// +kubebuilder:default=ClientCredentials
	Grant Grant `json:"grant,omitempty"`

	// tokenPath overrides the token endpoint path, relative to spec.url (default /oauth/v2/token),
	// for OAuth2 servers other than Mautic.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && !self.contains('?') && !self.contains('#')",message="spec.tokenPath must be a path such as /oauth/v2/token, without query or fragment"
	TokenPath string `json:"tokenPath,omitempty"`

	// scopes are requested with client-credentials and password token requests (Mautic supports no
	// scopes and refuses any; other OAuth2 servers may need them). A refresh keeps the granted scopes.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	Scopes []string `json:"scopes,omitempty"`

	// refreshTokenLifetime is how long the server keeps an unused refresh token (AuthorizationCode;
	// Mautic's default is 14 days). The operator refreshes at least often enough that it never lapses.
	// +optional
	// +kubebuilder:default="336h"
	// +kubebuilder:validation:XValidation:rule="self.matches(r'^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$')",message="spec.refreshTokenLifetime must be a duration in hours, minutes and seconds such as 336h for 14 days (days are not a unit)"
	// +kubebuilder:validation:XValidation:rule="!self.matches(r'^([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || (duration(self) >= duration('1s') && duration(self) <= duration('8760h'))",message="spec.refreshTokenLifetime must be between 1s and 8760h (one year); Mautic's default is 336h"
	RefreshTokenLifetime *Duration `json:"refreshTokenLifetime,omitempty"`

	// credentialsSecretRef names the Secret, in this namespace, that holds the credentials. The
	// operator reads it and never writes to it.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// tokenSecret describes the Secret the operator writes for workloads to mount.
	// +optional
	TokenSecret *TokenSecretSpec `json:"tokenSecret,omitempty"`

	// refresh says how long before expiry the token is renewed.
	// +optional
	Refresh *RefreshSpec `json:"refresh,omitempty"`

	// verify, when set, proves every new token against Mautic's API. Basic credentials are always verified.
	// +optional
	Verify *VerifySpec `json:"verify,omitempty"`

	// tls adds a CA to trust for the Mautic site.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// allowInsecureHTTP permits a plain http:// spec.url. Credentials and tokens then travel unencrypted.
	// +optional
	AllowInsecureHTTP bool `json:"allowInsecureHTTP,omitempty"`

	// suspend stops all token requests and Secret writes for this connection; the current token stays published.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// MauticConnectionStatus is what the operator last observed and did.
type MauticConnectionStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are Ready, Reconciling and Stalled, following the kstatus conventions.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// tokenSecretName is the name of the Secret that holds the token.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TokenSecretName string `json:"tokenSecretName,omitempty"`

	// expiresAt is when the published access token expires (absent for Basic).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// renewAt is when the operator will next refresh (or, for Basic, re-verify) the token.
	// +optional
	RenewAt *metav1.Time `json:"renewAt,omitempty"`

	// refreshTokenExpiresAt is when the stored refresh token would lapse if unused (AuthorizationCode only).
	// +optional
	RefreshTokenExpiresAt *metav1.Time `json:"refreshTokenExpiresAt,omitempty"`

	// lastRefreshTime is when the published token was obtained.
	// +optional
	LastRefreshTime *metav1.Time `json:"lastRefreshTime,omitempty"`

	// failedAttempts counts consecutive failed refreshes; reset by a success.
	// +optional
	FailedAttempts int32 `json:"failedAttempts,omitempty"`

	// lastFailureTime is when the last refresh failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// mauticVersion is the Mautic-Version header of the last successful API answer.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	MauticVersion string `json:"mauticVersion,omitempty"`

	// lastHandledRefreshRequest is the value of the refresh-requested-at annotation last acted on
	// (a value longer than 128 bytes is recorded by its digest).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledRefreshRequest string `json:"lastHandledRefreshRequest,omitempty"`
}

// MauticConnection keeps a Mautic API credential alive: it obtains tokens from a Mautic site,
// publishes them in a Secret that workloads mount, and refreshes them ahead of expiry.
// +kubebuilder:validation:XValidation:rule="!has(self.spec.tokenSecret) || !has(self.spec.tokenSecret.name) || self.spec.tokenSecret.name != self.metadata.name + '-oauth-state'",message="spec.tokenSecret.name must not be <metadata.name>-oauth-state: that Secret holds the refresh token, which workloads must never mount; choose another name"
// +kubebuilder:validation:XValidation:rule="(has(self.spec.tokenSecret) && has(self.spec.tokenSecret.name) ? self.spec.tokenSecret.name : self.metadata.name + '-token') != self.spec.credentialsSecretRef.name",message="the token Secret (spec.tokenSecret.name, default <metadata.name>-token) must not be the credentials Secret: the operator would overwrite it; choose another spec.tokenSecret.name"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.tls) || !has(self.spec.tls.caSecretRef) || (has(self.spec.tokenSecret) && has(self.spec.tokenSecret.name) ? self.spec.tokenSecret.name : self.metadata.name + '-token') != self.spec.tls.caSecretRef.name",message="the token Secret (spec.tokenSecret.name, default <metadata.name>-token) must not be the CA Secret: the operator would overwrite it; choose another spec.tokenSecret.name"
// +kubebuilder:validation:XValidation:rule="self.spec.credentialsSecretRef.name != self.metadata.name + '-oauth-state' && (!has(self.spec.tls) || !has(self.spec.tls.caSecretRef) || self.spec.tls.caSecretRef.name != self.metadata.name + '-oauth-state')",message="spec.credentialsSecretRef and spec.tls.caSecretRef must not name <metadata.name>-oauth-state, the operator's own refresh-token Secret"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mautic;mconn,categories=mautic
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Expires",type=string,format=date-time,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MauticConnection struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired connection.
	// +required
	Spec MauticConnectionSpec `json:"spec"`

	// status is what the operator observed. It defaults to observedGeneration 0, so that kstatus
	// (Flux, kubectl wait) sees a new object as InProgress until the operator has looked at it.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status MauticConnectionStatus `json:"status,omitempty"`
}

// StateSecretName returns the name of the operator-only Secret that holds the refresh token.
func (c *MauticConnection) StateSecretName() string {
	return c.Name + StateSecretSuffix
}

// TokenSecretName returns the name of the token Secret: spec.tokenSecret.name or "<name>-token".
func (c *MauticConnection) TokenSecretName() string {
	if c.Spec.TokenSecret != nil && c.Spec.TokenSecret.Name != "" {
		return c.Spec.TokenSecret.Name
	}
	return c.Name + TokenSecretSuffix
}

// EffectiveGrant returns spec.grant with its default applied.
func (c *MauticConnection) EffectiveGrant() Grant {
	if c.Spec.Grant == "" {
		return GrantClientCredentials
	}
	return c.Spec.Grant
}

// MauticConnectionList is a list of MauticConnections.
// +kubebuilder:object:root=true
type MauticConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the list's metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the MauticConnections.
	Items []MauticConnection `json:"items"`
}
