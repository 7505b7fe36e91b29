// Package refreshstate is the one place that builds and reads the state Secret of an
// AuthorizationCode connection ("<name>-oauth-state"), for the operator and the kubectl plugin
// alike. The state Secret holds the current refresh token and the bookkeeping that keeps it from
// being lost or spent twice: who is spending it (the claim), a token Mautic refused, a refresh whose
// outcome is unknown, and the seed already used. Workloads never mount it.
package refreshstate

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// Digest returns a short, stable, non-reversible digest of parts, for annotations that must name
// a secret value without holding it. Each part is prefixed with its length, so that ("ab","c") and
// ("a","bc") differ whatever bytes the parts hold.
func Digest(parts ...string) string {
	h := sha256.New()
	var prefix []byte
	for _, part := range parts {
		prefix = append(strconv.AppendInt(prefix[:0], int64(len(part)), 10), ':')
		_, _ = h.Write(prefix)
		_, _ = io.WriteString(h, part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// New returns an empty state Secret for conn, not yet holding a refresh token.
func New(conn *authv1alpha1.MauticConnection) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: conn.StateSecretName(), Namespace: conn.Namespace},
		Type:       corev1.SecretTypeOpaque,
	}
}

// SetRefreshToken makes state hold refreshToken alone, issued at issuedAt, with the operator's
// labels and a controller reference to conn. It clears the claim, the rejection and the ambiguous
// refresh, which were about the token it replaces; other annotations (the seed hash) are kept.
func SetRefreshToken(state *corev1.Secret, conn *authv1alpha1.MauticConnection, refreshToken string, issuedAt time.Time) {
	metav1.SetMetaDataLabel(&state.ObjectMeta, authv1alpha1.ManagedByLabel, authv1alpha1.ManagedByValue)
	metav1.SetMetaDataLabel(&state.ObjectMeta, authv1alpha1.ConnectionLabel, conn.Name)
	state.OwnerReferences = []metav1.OwnerReference{*conn.ControllerReference()}
	state.Data = map[string][]byte{authv1alpha1.RefreshTokenKey: []byte(refreshToken)}
	state.StringData = nil
	metav1.SetMetaDataAnnotation(&state.ObjectMeta, authv1alpha1.RefreshTokenIssuedAtAnnotation, issuedAt.UTC().Format(time.RFC3339Nano))
	delete(state.Annotations, authv1alpha1.RefreshClaimAnnotation)
	delete(state.Annotations, authv1alpha1.RejectedHashAnnotation)
	delete(state.Annotations, authv1alpha1.AmbiguousRefreshAnnotation)
}

// SetAuthorized makes state hold refreshToken from a person's authorization at now (kubectl
// mautic authorize): as SetRefreshToken builds it, with the authorized-at annotation, and with
// seed (the credentials Secret's refresh_token, if any) recorded as used, since the
// authorization supersedes it.
func SetAuthorized(state *corev1.Secret, conn *authv1alpha1.MauticConnection, refreshToken, seed string, now time.Time) {
	SetRefreshToken(state, conn, refreshToken, now)
	SetSeedUsed(state, seed)
	metav1.SetMetaDataAnnotation(&state.ObjectMeta, authv1alpha1.AuthorizedAtAnnotation, now.UTC().Format(time.RFC3339))
}

// RefreshToken returns the refresh token state holds; "" for a nil Secret or none.
func RefreshToken(state *corev1.Secret) string {
	if state == nil {
		return ""
	}
	return string(state.Data[authv1alpha1.RefreshTokenKey])
}

// ControlledBy reports whether conn is the controller of state.
func ControlledBy(state *corev1.Secret, conn *authv1alpha1.MauticConnection) bool {
	owner := metav1.GetControllerOf(state)
	return owner != nil && owner.UID == conn.UID
}

// IssuedAt returns when the stored refresh token was issued; zero when unknown.
func IssuedAt(state *corev1.Secret) time.Time {
	if state == nil {
		return time.Time{}
	}
	issuedAt, err := time.Parse(time.RFC3339Nano, state.Annotations[authv1alpha1.RefreshTokenIssuedAtAnnotation])
	if err != nil {
		return time.Time{}
	}
	return issuedAt
}

// Rejected reports whether Mautic refused the refresh token state holds.
func Rejected(state *corev1.Secret) bool {
	token := RefreshToken(state)
	return token != "" && state.Annotations[authv1alpha1.RejectedHashAnnotation] == Digest(token)
}

// SetRejected records that Mautic refused refreshToken, and releases the claim.
func SetRejected(state *corev1.Secret, refreshToken string) {
	metav1.SetMetaDataAnnotation(&state.ObjectMeta, authv1alpha1.RejectedHashAnnotation, Digest(refreshToken))
	delete(state.Annotations, authv1alpha1.RefreshClaimAnnotation)
}

// SeedUsed reports whether the refresh_token seed of the credentials Secret was already used (or
// superseded by an authorization), so that it must not overwrite the stored token.
func SeedUsed(state *corev1.Secret, seed string) bool {
	return state != nil && state.Annotations[authv1alpha1.SeedHashAnnotation] == Digest(seed)
}

// SetSeedUsed records seed as used; an empty seed records nothing.
func SetSeedUsed(state *corev1.Secret, seed string) {
	if seed != "" {
		metav1.SetMetaDataAnnotation(&state.ObjectMeta, authv1alpha1.SeedHashAnnotation, Digest(seed))
	}
}

// CauseUnusableAnswer is the cause of an ambiguous refresh whose answer was a success that could
// not be read: Mautic has probably rotated the token, which is then not sent again on its own.
const CauseUnusableAnswer = "unusable answer"

// Ambiguous is a refresh whose outcome is unknown: the request may have reached Mautic, which then
// rotated the token, but no usable answer came back.
type Ambiguous struct {
	// At is when the refresh was attempted.
	At time.Time
	// Cause says what went wrong, e.g. "timeout" or "connection dropped".
	Cause string
}

// SetAmbiguous records that spending refreshToken at at ended without a usable answer, and
// releases the claim.
func SetAmbiguous(state *corev1.Secret, refreshToken string, at time.Time, cause string) {
	value := Digest(refreshToken) + " " + at.UTC().Format(time.RFC3339) + " " + cause
	metav1.SetMetaDataAnnotation(&state.ObjectMeta, authv1alpha1.AmbiguousRefreshAnnotation, value)
	delete(state.Annotations, authv1alpha1.RefreshClaimAnnotation)
}

// AmbiguousRefresh returns the ambiguous refresh recorded for the token state holds, if any.
func AmbiguousRefresh(state *corev1.Secret) (Ambiguous, bool) {
	if state == nil {
		return Ambiguous{}, false
	}
	digest, rest, ok := strings.Cut(state.Annotations[authv1alpha1.AmbiguousRefreshAnnotation], " ")
	if !ok || digest != Digest(RefreshToken(state)) {
		return Ambiguous{}, false
	}
	at, cause, _ := strings.Cut(rest, " ")
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return Ambiguous{}, false
	}
	return Ambiguous{At: t, Cause: cause}, true
}

// Claim says which manager is spending the stored refresh token, and since when by the API
// server's clock.
type Claim struct {
	// Holder identifies the manager process.
	Holder string
	// RecordedAt is when the API server recorded the claim (the managed-fields time of
	// RefreshClaimFieldManager), or the time in the annotation for a claim written without it.
	RecordedAt time.Time
}

// SetClaim marks state as being spent by holder; the write must use RefreshClaimFieldManager so
// that the API server records its time. localNow is kept in the value for people to read.
func SetClaim(state *corev1.Secret, holder string, localNow time.Time) {
	metav1.SetMetaDataAnnotation(&state.ObjectMeta, authv1alpha1.RefreshClaimAnnotation, holder+" "+localNow.UTC().Format(time.RFC3339Nano))
}

// ReleaseClaim removes the claim from state.
func ReleaseClaim(state *corev1.Secret) {
	delete(state.Annotations, authv1alpha1.RefreshClaimAnnotation)
}

// ClaimOf returns the claim on state, if any.
func ClaimOf(state *corev1.Secret) (Claim, bool) {
	if state == nil {
		return Claim{}, false
	}
	holder, at, ok := strings.Cut(state.Annotations[authv1alpha1.RefreshClaimAnnotation], " ")
	if !ok || holder == "" {
		return Claim{}, false
	}
	claim := Claim{Holder: holder}
	for _, entry := range state.ManagedFields {
		if entry.Manager == authv1alpha1.RefreshClaimFieldManager && entry.Time != nil {
			claim.RecordedAt = entry.Time.Time
		}
	}
	if claim.RecordedAt.IsZero() {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return Claim{}, false
		}
		claim.RecordedAt = t
	}
	return claim, true
}
