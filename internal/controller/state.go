package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// Annotations the operator keeps on the state Secret of an AuthorizationCode connection.
const (
	// seedHashAnnotation records the refresh_token seed of the credentials Secret already used, so
	// that an unchanged seed is ignored and a changed one seeds again.
	seedHashAnnotation = "auth.mautic-operator.dev/seed-hash"
	// refreshTokenIssuedAtAnnotation records when the stored refresh token was issued.
	refreshTokenIssuedAtAnnotation = "auth.mautic-operator.dev/refresh-token-issued-at"
	// rejectedHashAnnotation records a refresh token Mautic refused, so that it is never sent again.
	rejectedHashAnnotation = "auth.mautic-operator.dev/rejected-token-hash"
	// refreshClaimAnnotation marks the refresh token as being spent: "<holder> <RFC 3339 time>".
	refreshClaimAnnotation = "auth.mautic-operator.dev/refresh-claim"
)

// claimTTL is how long a claim by another manager blocks a refresh: longer than any token request.
const claimTTL = 2 * time.Minute

// errRefreshInFlight is returned when another manager holds a fresh claim on the refresh token.
var errRefreshInFlight = errors.New("another manager is refreshing this connection's token; retrying")

// stallError is a failure the controller finds itself, before or instead of a Mautic answer.
type stallError struct {
	class   mautic.Class
	reason  string
	message string
}

func (e *stallError) Error() string { return e.message }

// refreshTokenVault keeps rotated refresh tokens that could not be persisted yet, so that the next
// attempt persists them before anything else and nothing Mautic issued is lost.
type refreshTokenVault struct {
	mu      sync.Mutex
	pending map[types.UID]string
}

func (v *refreshTokenVault) put(uid types.UID, refreshToken string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending == nil {
		v.pending = map[types.UID]string{}
	}
	v.pending[uid] = refreshToken
}

func (v *refreshTokenVault) take(uid types.UID) (string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	refreshToken, ok := v.pending[uid]
	delete(v.pending, uid)
	return refreshToken, ok
}

// refreshWithRotation spends the stored refresh token for a new access token, in the order that
// never loses a token: claim the stored token (an update guarded by resourceVersion, so that two
// managers never spend it twice), ask Mautic, persist the rotated refresh token, and only then hand
// the access token back for publishing.
func (r *MauticConnectionReconciler) refreshWithRotation(ctx context.Context, s *scope, req mautic.TokenRequest) (*mautic.Token, error) {
	state, err := r.prepareState(ctx, s)
	if err != nil {
		return nil, err
	}
	refreshToken := string(state.Data[authv1alpha1.RefreshTokenKey])
	if state.Annotations[rejectedHashAnnotation] == hashOf(refreshToken) {
		return nil, r.reauthorizationRequired(s, "Mautic refused the stored refresh token earlier")
	}
	if state, err = r.claim(ctx, s, state); err != nil {
		return nil, err
	}

	req.Grant = mautic.GrantRefreshToken
	req.RefreshToken = refreshToken
	obtained, err := r.Mautic.Token(ctx, req)
	if err != nil {
		if mautic.Classify(err) == mautic.ClassReauthorization {
			r.reject(ctx, state, refreshToken)
			return nil, r.reauthorizationRequired(s, err.Error())
		}
		return nil, err
	}
	rotated := obtained.RefreshToken
	if rotated == "" {
		rotated = refreshToken // a server that does not rotate keeps the old one valid
	}
	if err := r.persistRefreshToken(ctx, s, state, refreshToken, rotated); err != nil {
		r.vault.put(s.conn.UID, rotated)
		return nil, fmt.Errorf("persisting the rotated refresh token (kept in memory, retried first next time): %w", err)
	}
	s.refreshTokenIssuedAt = s.now
	return obtained, nil
}

// prepareState reads the state Secret uncached and brings it up to date before a refresh: a
// rotated token that could not be persisted last time is written first, then a new seed from the
// credentials Secret. It stalls with AuthorizationRequired when there is no refresh token at all.
func (r *MauticConnectionReconciler) prepareState(ctx context.Context, s *scope) (*corev1.Secret, error) {
	state, err := r.readSecret(ctx, s.conn.Namespace, s.conn.StateSecretName())
	if err != nil {
		return nil, err
	}
	if state != nil && controllerUID(state) != s.conn.UID {
		return nil, &stallError{class: mautic.ClassConfiguration, reason: authv1alpha1.TokenSecretConflictReason, message: fmt.Sprintf(
			"Secret %s/%s exists and is not owned by this MauticConnection: delete it, then run kubectl mautic authorize %s -n %s",
			s.conn.Namespace, s.conn.StateSecretName(), s.conn.Name, s.conn.Namespace)}
	}
	if pending, ok := r.vault.take(s.conn.UID); ok && state != nil {
		if err := r.writeState(ctx, s, state, pending, nil); err != nil {
			r.vault.put(s.conn.UID, pending)
			return nil, fmt.Errorf("persisting the refresh token kept from the last refresh: %w", err)
		}
		return r.readSecret(ctx, s.conn.Namespace, s.conn.StateSecretName())
	}
	if s.credentials.seed != "" && (state == nil || state.Annotations[seedHashAnnotation] != hashOf(s.credentials.seed)) {
		if err := r.writeState(ctx, s, state, s.credentials.seed, map[string]string{seedHashAnnotation: hashOf(s.credentials.seed)}); err != nil {
			return nil, fmt.Errorf("seeding the refresh token from the credentials Secret: %w", err)
		}
		return r.readSecret(ctx, s.conn.Namespace, s.conn.StateSecretName())
	}
	if state == nil || len(state.Data[authv1alpha1.RefreshTokenKey]) == 0 {
		return nil, &stallError{class: mautic.ClassConfiguration, reason: authv1alpha1.AuthorizationRequiredReason, message: fmt.Sprintf(
			"no refresh token yet: run `kubectl mautic authorize %s -n %s`, or put a %s key in Secret %s/%s",
			s.conn.Name, s.conn.Namespace, authv1alpha1.RefreshTokenKey, s.conn.Namespace, s.conn.Spec.CredentialsSecretRef.Name)}
	}
	return state, nil
}

// claim marks the stored refresh token as being spent by this manager. The update is guarded by
// resourceVersion: a manager that lost the race gets a conflict and spends nothing.
func (r *MauticConnectionReconciler) claim(ctx context.Context, s *scope, state *corev1.Secret) (*corev1.Secret, error) {
	if holder, at, ok := parseClaim(state.Annotations[refreshClaimAnnotation]); ok && holder != r.holder() && s.now.Sub(at) < claimTTL {
		return nil, errRefreshInFlight
	}
	claimed := state.DeepCopy()
	metav1.SetMetaDataAnnotation(&claimed.ObjectMeta, refreshClaimAnnotation, r.holder()+" "+s.now.UTC().Format(time.RFC3339Nano))
	if err := r.Client.Update(ctx, claimed); err != nil {
		if apierrors.IsConflict(err) {
			return nil, errRefreshInFlight
		}
		return nil, fmt.Errorf("claiming the refresh token in Secret %s/%s: %w", state.Namespace, state.Name, err)
	}
	return claimed, nil
}

// persistRefreshToken writes the rotated refresh token. A conflict means someone wrote the state
// Secret after our claim: if it still holds the token we spent, write again on the new version;
// if it holds another token (a person authorized again), theirs is newer and is kept.
func (r *MauticConnectionReconciler) persistRefreshToken(ctx context.Context, s *scope, state *corev1.Secret, spent, rotated string) error {
	var err error
	for range 5 {
		if err = r.writeState(ctx, s, state, rotated, nil); err == nil || !apierrors.IsConflict(err) {
			return err
		}
		if state, err = r.readSecret(ctx, s.conn.Namespace, s.conn.StateSecretName()); err != nil {
			return err
		}
		if state == nil || string(state.Data[authv1alpha1.RefreshTokenKey]) != spent {
			return nil
		}
	}
	return err
}

// reject records that Mautic refused a refresh token, so that it is not sent again; best effort.
func (r *MauticConnectionReconciler) reject(ctx context.Context, state *corev1.Secret, refreshToken string) {
	rejected := state.DeepCopy()
	metav1.SetMetaDataAnnotation(&rejected.ObjectMeta, rejectedHashAnnotation, hashOf(refreshToken))
	delete(rejected.Annotations, refreshClaimAnnotation)
	_ = r.Client.Update(ctx, rejected)
}

// writeState creates or updates the state Secret with refreshToken, issued now, clearing any claim
// or rejection; an update is guarded by the resourceVersion of state.
func (r *MauticConnectionReconciler) writeState(ctx context.Context, s *scope, state *corev1.Secret, refreshToken string, extra map[string]string) error {
	desired := state.DeepCopy()
	if desired == nil {
		desired = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.conn.StateSecretName(), Namespace: s.conn.Namespace}, Type: corev1.SecretTypeOpaque}
	}
	if desired.Labels == nil {
		desired.Labels = map[string]string{}
	}
	desired.Labels[authv1alpha1.ManagedByLabel] = authv1alpha1.ManagedByValue
	desired.Labels[authv1alpha1.ConnectionLabel] = s.conn.Name
	desired.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: authv1alpha1.GroupVersion.String(), Kind: "MauticConnection", Name: s.conn.Name, UID: s.conn.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}}
	desired.Data = map[string][]byte{authv1alpha1.RefreshTokenKey: []byte(refreshToken)}
	metav1.SetMetaDataAnnotation(&desired.ObjectMeta, refreshTokenIssuedAtAnnotation, s.now.UTC().Format(time.RFC3339Nano))
	for k, v := range extra {
		metav1.SetMetaDataAnnotation(&desired.ObjectMeta, k, v)
	}
	delete(desired.Annotations, refreshClaimAnnotation)
	delete(desired.Annotations, rejectedHashAnnotation)
	if state == nil {
		return r.Client.Create(ctx, desired, client.FieldOwner(FieldOwner))
	}
	return r.Client.Update(ctx, desired, client.FieldOwner(FieldOwner))
}

// refreshTokenIssuedAt reads when the stored refresh token was issued from the cached state Secret;
// zero when unknown.
func (r *MauticConnectionReconciler) refreshTokenIssuedAt(ctx context.Context, conn *authv1alpha1.MauticConnection) time.Time {
	state := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: conn.Namespace, Name: conn.StateSecretName()}, state); err != nil {
		return time.Time{}
	}
	issuedAt, err := time.Parse(time.RFC3339Nano, state.Annotations[refreshTokenIssuedAtAnnotation])
	if err != nil {
		return time.Time{}
	}
	return issuedAt
}

func (r *MauticConnectionReconciler) reauthorizationRequired(s *scope, cause string) error {
	return &stallError{class: mautic.ClassReauthorization, reason: authv1alpha1.ReauthorizationRequiredReason, message: fmt.Sprintf(
		"%s: authorize again with `kubectl mautic authorize %s -n %s` (or change the %s seed in Secret %s/%s)",
		cause, s.conn.Name, s.conn.Namespace, authv1alpha1.RefreshTokenKey, s.conn.Namespace, s.conn.Spec.CredentialsSecretRef.Name)}
}

// holder identifies this manager process in refresh claims.
func (r *MauticConnectionReconciler) holder() string {
	r.holderOnce.Do(func() {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.holderID = hex.EncodeToString(b)
	})
	return r.holderID
}

// parseClaim splits a claim annotation into its holder and time.
func parseClaim(value string) (string, time.Time, bool) {
	holder, at, ok := strings.Cut(value, " ")
	if !ok {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	return holder, t, err == nil
}
