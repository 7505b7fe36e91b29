package controller

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// failure is a failed attempt to obtain a token, as the status and events report it.
type failure struct {
	class      mautic.Class
	reason     string
	message    string
	retryAfter time.Duration
}

// describeFailure turns an error from the Mautic client into a condition reason and a message
// that names the fix. Messages quote Mautic's answer (never a token or secret).
func describeFailure(s *scope, err error) *failure {
	var stall *stallError
	if errors.As(err, &stall) {
		return &failure{class: stall.class, reason: stall.reason, message: stall.message}
	}
	class := mautic.Classify(err)
	f := &failure{class: class, reason: authv1alpha1.RefreshFailedReason, message: err.Error()}
	ref := fmt.Sprintf("%s/%s", s.conn.Namespace, s.conn.Spec.CredentialsSecretRef.Name)
	grant := s.conn.EffectiveGrant()

	var apiErr *mautic.Error
	var unexpected *mautic.UnexpectedResponseError
	var forbidden *mautic.ForbiddenAddressError
	isAPIErr := errors.As(err, &apiErr)
	isUnexpected := errors.As(err, &unexpected)
	switch {
	case class == mautic.ClassTransient:
		f.message = fmt.Sprintf("Mautic did not answer usably, retrying: %v", err)
	case errors.As(err, &forbidden):
		f.reason = authv1alpha1.ForbiddenAddressReason
		f.message = fmt.Sprintf("%v: point spec.url at the Mautic site; if this address is intended, an admin changes the "+
			"manager's --deny-target-cidrs (or sets --allow-link-local-targets)", err)
	case mautic.IsCertificateError(err):
		f.reason = authv1alpha1.TLSErrorReason
		f.message = fmt.Sprintf("Mautic's TLS certificate is not trusted (%v): put its CA in a Secret's %s key and set spec.tls.caSecretRef",
			err, authv1alpha1.CACertKey)
	case isUnexpected && unexpected.StatusCode == http.StatusNotFound,
		isAPIErr && apiErr.StatusCode == http.StatusNotFound:
		f.reason = authv1alpha1.EndpointNotFoundReason
		f.message = fmt.Sprintf("%v: check that spec.url is the Mautic site URL (append /index.php for sites without URL rewriting)", err)
	case isAPIErr:
		f.reason, f.message = describeMauticError(apiErr, grant, ref)
	default:
		f.reason = authv1alpha1.RequestRejectedReason
	}
	return f
}

// describeMauticError maps Mautic's error types to reasons and fixes.
func describeMauticError(apiErr *mautic.Error, grant authv1alpha1.Grant, ref string) (string, string) {
	switch {
	case apiErr.Type == "api_disabled":
		return authv1alpha1.APIDisabledReason, fmt.Sprintf("%v: enable the API in Mautic's Configuration > API Settings, "+
			"then request a refresh with the annotation %s", apiErr, authv1alpha1.RefreshRequestedAtAnnotation)
	case apiErr.Type == "invalid_client":
		return authv1alpha1.InvalidClientReason, fmt.Sprintf("%v: check client_id and client_secret in Secret %s "+
			"against Mautic's Settings > API Credentials", apiErr, ref)
	case apiErr.Type == "unauthorized_client":
		return authv1alpha1.GrantNotAllowedReason, fmt.Sprintf("%v: this Mautic client may not use grant %s; "+
			"have an admin create API credentials with the Client Credentials grant (Mautic 4.0 or later), or use grant Basic", apiErr, grant)
	case apiErr.Op == mautic.OpVerify && grant == authv1alpha1.GrantBasic && apiErr.StatusCode == http.StatusForbidden:
		return authv1alpha1.BasicAuthDisabledReason, fmt.Sprintf("%v: enable HTTP basic auth in Mautic's Configuration > API Settings, "+
			"or use grant ClientCredentials", apiErr)
	case apiErr.Op == mautic.OpVerify && grant == authv1alpha1.GrantBasic && apiErr.StatusCode == http.StatusUnauthorized:
		return authv1alpha1.InvalidBasicCredentialsReason, fmt.Sprintf("%v: check username and password in Secret %s", apiErr, ref)
	case apiErr.Op == mautic.OpVerify:
		return authv1alpha1.AccessDeniedReason, fmt.Sprintf("%v: Mautic's API refused the new token; check spec.verify.path, "+
			"and that a proxy passes the Authorization header through to Mautic", apiErr)
	default:
		return authv1alpha1.RequestRejectedReason, fmt.Sprintf("%v: check spec.url, spec.grant and the credentials in Secret %s", apiErr, ref)
	}
}

// actionFor names the action of an event from the reason a token was requested.
func actionFor(requestReason string) string {
	if requestReason == authv1alpha1.NoTokenReason {
		return "IssueToken"
	}
	return "RefreshToken"
}
