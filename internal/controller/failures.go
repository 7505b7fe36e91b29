package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// The errors a phase returns. phaseFailed tells them apart; any other error is the API server's.
//
//   - *stallError: the controller found that retrying the same inputs cannot help, before or
//     instead of asking Mautic: a configuration stall, or a refresh token only a person can replace.
//   - *requestError: a token request failed. Mautic's answer (or its absence) decides the class
//     (mautic.Classify); a refresh another manager runs, a shutdown or a busy host is a wait.

// stallError is a failure that waits for a change: of the spec, a Secret or Mautic's settings
// (mautic.ClassConfiguration), or a new authorization (mautic.ClassReauthorization).
type stallError struct {
	class   mautic.Class
	reason  string
	message string
}

func (e *stallError) Error() string { return e.message }

// configurationError stalls the connection until its spec, a Secret it reads or Mautic's
// configuration changes; message names the fix.
func configurationError(reason, message string) error {
	return &stallError{class: mautic.ClassConfiguration, reason: reason, message: message}
}

// reauthorizationError stalls the connection until a person authorizes it again or requests a refresh.
func reauthorizationError(reason, message string) error {
	return &stallError{class: mautic.ClassReauthorization, reason: reason, message: message}
}

// requestError is a failed request for a token (Basic: a failed verification).
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// phaseFailed is the one place where a phase's error is interpreted. A wait (another manager's
// refresh, a shutdown, a busy host) is no failure and only requeues. A stall or a failed request
// becomes the scope's failure, from which finishReconcile computes the conditions, the event and
// the metrics; phaseFailed schedules the next attempt and logs the failure once. Any other error
// is the API server's and goes back to controller-runtime, which retries it with its rate limiter.
func (r *MauticConnectionReconciler) phaseFailed(ctx context.Context, s *scope, err error) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var request *requestError
	var stall *stallError
	switch {
	case errors.As(err, &request):
		if result, waiting := waitFor(ctx, s, request.err); waiting {
			return result, nil
		}
		err = request.err
	case !errors.As(err, &stall):
		return ctrl.Result{}, err
	}

	f := describeFailure(s, err)
	s.failure = f
	switch f.class {
	case mautic.ClassConfiguration:
		delay := r.retryConfiguration(s)
		log.Error(err, "Connection stalled: its configuration must change; retrying later", "reason", f.reason, "after", delay)
		return ctrl.Result{RequeueAfter: delay}, nil
	case mautic.ClassReauthorization:
		// A person acts, and their change triggers the next reconcile.
		log.Error(err, "Connection stalled: a person must authorize it again", "reason", f.reason)
		return ctrl.Result{}, nil
	default:
		var remaining time.Duration
		if s.current.valid(s.now) && !s.current.ExpiresAt.IsZero() {
			remaining = s.current.ExpiresAt.Sub(s.now)
		}
		f.retryAfter = token.Backoff(s.conn.Status.FailedAttempts+1, remaining)
		log.Info("Token request failed; retrying", "reason", f.reason, "error", err.Error(), "retryAfter", f.retryAfter)
		return ctrl.Result{RequeueAfter: f.retryAfter}, nil
	}
}

// waitFor reports whether a failed token request is a wait rather than a failure, and when to look again.
func waitFor(ctx context.Context, s *scope, err error) (ctrl.Result, bool) {
	log := logf.FromContext(ctx)
	switch {
	case errors.Is(err, errRefreshInFlight):
		log.Info("Another manager is refreshing this connection; waiting")
		return ctrl.Result{RequeueAfter: inFlightRetry}, true
	case errors.Is(err, errShuttingDown):
		log.V(1).Info("Not starting a refresh: the manager is shutting down")
		return ctrl.Result{RequeueAfter: inFlightRetry}, true
	}
	if retryAfter, busy := mautic.IsHostBusy(err); busy {
		// Nothing was sent: the host has enough requests in flight, or its circuit is open. The
		// worker moves on to another connection instead of waiting.
		log.V(1).Info("Mautic host busy; requeued", "reason", err.Error(), "after", retryAfter)
		return ctrl.Result{RequeueAfter: retryAfter + token.Jitter(string(s.conn.UID), retryAfter)}, true
	}
	return ctrl.Result{}, false
}

// stalled reports whether this reconcile's failure waits for a change rather than a retry.
func (s *scope) stalled() bool {
	return s.failure != nil && s.failure.class != mautic.ClassTransient
}

// failure is a failed attempt to obtain a token, as the status and events report it.
type failure struct {
	class      mautic.Class
	reason     string
	message    string
	retryAfter time.Duration
}

// describeFailure turns a stall or an error from the Mautic client into a condition reason and a
// message that names the fix. Messages quote Mautic's answer (never a token or secret).
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
