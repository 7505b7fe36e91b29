package token

import (
	"fmt"
	"time"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// Issued is what the operator knows of the token it published last.
type Issued struct {
	// IssuedAt is when the token was obtained (or, for Basic, verified).
	IssuedAt time.Time
	// ExpiresAt is when the token expires; zero for credentials without expiry (Basic).
	ExpiresAt time.Time
	// CredentialsHash identifies the credentials the token was obtained with.
	CredentialsHash string
	// ConnectionHash identifies where and how the token was requested: grant, site URL, token path and scopes.
	ConnectionHash string
}

// Input is everything the policies look at.
type Input struct {
	// Now is the current time, from the reconciler's clock.
	Now time.Time
	// Issued is the published token, nil when there is none the operator can trust.
	Issued *Issued
	// TokenSecretModified is true when a token Secret exists but no longer holds the token the operator published.
	TokenSecretModified bool
	// CredentialsHash identifies the credentials in the credentials Secret now.
	CredentialsHash string
	// ConnectionHash identifies where and how a token would be requested now (see Issued.ConnectionHash).
	ConnectionHash string
	// RefreshRequest is the refresh-requested-at annotation's value now.
	RefreshRequest string
	// LastHandledRefreshRequest is the annotation value last acted on.
	LastHandledRefreshRequest string
	// RenewAt is when the published token is due for renewal.
	RenewAt time.Time
}

// Policy returns a reason and a message when it decides that a new token is needed.
type Policy func(Input) (reason, message string, needed bool)

// Chain is an ordered list of policies; the first that fires gives the reason.
type Chain []Policy

// Evaluate runs the policies in order and returns the first that fires.
func (c Chain) Evaluate(in Input) (reason, message string, needed bool) {
	for _, policy := range c {
		if reason, message, needed := policy(in); needed {
			return reason, message, true
		}
	}
	return "", "", false
}

// TokenNeededChain is the chain the reconciler runs before it calls Mautic.
var TokenNeededChain = Chain{
	TokenSecretModified,
	NoToken,
	CredentialsChanged,
	ConnectionChanged,
	RefreshRequested,
	Expired,
	RenewalDue,
}

// TokenSecretModified fires when the token Secret no longer holds the published token and the
// operator remembers nothing valid to restore it from.
func TokenSecretModified(in Input) (string, string, bool) {
	if in.Issued == nil && in.TokenSecretModified {
		return authv1alpha1.TokenSecretModifiedReason, "the token Secret does not hold the token the operator published", true
	}
	return "", "", false
}

// NoToken fires when no token has been published yet.
func NoToken(in Input) (string, string, bool) {
	if in.Issued == nil {
		return authv1alpha1.NoTokenReason, "no token has been issued yet", true
	}
	return "", "", false
}

// CredentialsChanged fires when the credentials Secret changed since the token was obtained.
func CredentialsChanged(in Input) (string, string, bool) {
	if in.Issued != nil && in.Issued.CredentialsHash != in.CredentialsHash {
		return authv1alpha1.CredentialsChangedReason, "the credentials Secret changed", true
	}
	return "", "", false
}

// ConnectionChanged fires when spec.url or spec.grant changed since the token was obtained.
func ConnectionChanged(in Input) (string, string, bool) {
	if in.Issued != nil && in.Issued.ConnectionHash != in.ConnectionHash {
		return authv1alpha1.ConnectionChangedReason, "spec.url or spec.grant changed", true
	}
	return "", "", false
}

// RefreshRequested fires once for each new value of the refresh-requested-at annotation.
func RefreshRequested(in Input) (string, string, bool) {
	if in.RefreshRequest != "" && in.RefreshRequest != in.LastHandledRefreshRequest {
		return authv1alpha1.RefreshRequestedReason, fmt.Sprintf("refresh requested at %s", in.RefreshRequest), true
	}
	return "", "", false
}

// Expired fires when the published token has expired.
func Expired(in Input) (string, string, bool) {
	if in.Issued != nil && !in.Issued.ExpiresAt.IsZero() && !in.Now.Before(in.Issued.ExpiresAt) {
		return authv1alpha1.TokenExpiredReason, fmt.Sprintf("the token expired at %s", in.Issued.ExpiresAt.UTC().Format(time.RFC3339)), true
	}
	return "", "", false
}

// RenewalDue fires when the published token reached its renewal time.
func RenewalDue(in Input) (string, string, bool) {
	if !in.RenewAt.IsZero() && !in.Now.Before(in.RenewAt) {
		return authv1alpha1.RenewalDueReason, fmt.Sprintf("renewal was due at %s", in.RenewAt.UTC().Format(time.RFC3339)), true
	}
	return "", "", false
}
