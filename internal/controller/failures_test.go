package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// Credentials in the failure tests' scope: no failure message may quote them.
const (
	failureClientID     = "7_client-id-4f1e"
	failureClientSecret = "client-secret-9c2b77d1"
	failureUsername     = "api-user-3d5a"
	failurePassword     = "password-e8f04c"
)

// failureScope returns the scope of a reconcile of a connection with grant that holds credentials.
func failureScope(grant authv1alpha1.Grant) *scope {
	conn := testConnection()
	conn.Spec.Grant = grant
	creds := credentials{clientID: failureClientID, clientSecret: failureClientSecret, username: failureUsername, password: failurePassword}
	return &scope{
		conn:            conn,
		now:             statusNow,
		baseURL:         testSiteURL,
		credentials:     creds,
		credentialsHash: creds.hash(conn.EffectiveGrant()),
	}
}

func TestDescribeFailure(t *testing.T) {
	t.Parallel()
	tokenError := func(status int, errorType, message string) *mautic.Error {
		return &mautic.Error{Op: mautic.OpToken, Grant: mautic.GrantClientCredentials, StatusCode: status, Type: errorType, Message: message}
	}
	verifyError := func(status int, errorType string) *mautic.Error {
		return &mautic.Error{Op: mautic.OpVerify, StatusCode: status, Type: errorType}
	}
	// wrapped is how net/http returns a failure below HTTP.
	wrapped := func(err error) error {
		return &url.Error{Op: "Post", URL: testSiteURL + "/oauth/v2/token", Err: err}
	}
	const credentialsRef = "Secret sales/mautic-api"

	tests := []struct {
		name        string
		grant       authv1alpha1.Grant
		err         error
		wantClass   mautic.Class
		wantReason  string
		wantMessage []string
	}{
		{
			name:        "invalid_client",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         tokenError(400, "invalid_client", "The client credentials are invalid"),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.InvalidClientReason,
			wantMessage: []string{"HTTP 400 invalid_client", "The client credentials are invalid", "client_id and client_secret", credentialsRef},
		},
		{
			name:        "invalid_client, RFC 6749 style 401",
			err:         tokenError(401, "invalid_client", ""),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.InvalidClientReason,
			wantMessage: []string{credentialsRef},
		},
		{
			name:        "wrapped invalid_client",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         fmt.Errorf("obtaining a token: %w", tokenError(400, "invalid_client", "")),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.InvalidClientReason,
			wantMessage: []string{credentialsRef},
		},
		{
			name:        "unauthorized_client",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         tokenError(400, "unauthorized_client", "The grant type is unauthorized for this client_id"),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.GrantNotAllowedReason,
			wantMessage: []string{"may not use grant ClientCredentials", "Client Credentials grant"},
		},
		{
			name:        "api_disabled",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         tokenError(403, "api_disabled", "API disabled"),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.APIDisabledReason,
			wantMessage: []string{"API Settings", authv1alpha1.RefreshRequestedAtAnnotation},
		},
		{
			name:        "api_disabled on verify with grant Basic wins over BasicAuthDisabled",
			grant:       authv1alpha1.GrantBasic,
			err:         verifyError(403, "api_disabled"),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.APIDisabledReason,
			wantMessage: []string{"enable the API"},
		},
		{
			name:        "verify 403 with grant Basic",
			grant:       authv1alpha1.GrantBasic,
			err:         verifyError(403, ""),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.BasicAuthDisabledReason,
			wantMessage: []string{"Mautic API answered HTTP 403", "enable HTTP basic auth"},
		},
		{
			name:        "verify 401 with grant Basic",
			grant:       authv1alpha1.GrantBasic,
			err:         verifyError(401, ""),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.InvalidBasicCredentialsReason,
			wantMessage: []string{"check username and password", credentialsRef},
		},
		{
			name:        "verify 401 with grant ClientCredentials",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         verifyError(401, "access_denied"),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.AccessDeniedReason,
			wantMessage: []string{"refused the new token", "spec.verify.path", "Authorization header"},
		},
		{
			name:        "verify 403 with grant ClientCredentials",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         verifyError(403, ""),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.AccessDeniedReason,
			wantMessage: []string{"refused the new token"},
		},
		{
			name:        "verify 401 with grant unset (defaults to ClientCredentials)",
			grant:       "",
			err:         verifyError(401, ""),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.AccessDeniedReason,
			wantMessage: []string{"refused the new token"},
		},
		{
			name:        "404 error answer",
			grant:       authv1alpha1.GrantBasic,
			err:         verifyError(404, ""),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.EndpointNotFoundReason,
			wantMessage: []string{"HTTP 404", "/index.php"},
		},
		{
			name:  "404 HTML page",
			grant: authv1alpha1.GrantClientCredentials,
			err: wrapped(&mautic.UnexpectedResponseError{Op: mautic.OpToken, StatusCode: 404, ContentType: "text/html",
				Detail: "not JSON"}),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.EndpointNotFoundReason,
			wantMessage: []string{"HTTP 404", "check that spec.url is the Mautic site URL"},
		},
		{
			name:  "200 HTML login page",
			grant: authv1alpha1.GrantClientCredentials,
			err: &mautic.UnexpectedResponseError{Op: mautic.OpToken, StatusCode: 200, ContentType: "text/html; charset=UTF-8",
				Detail: "not JSON"},
			wantClass:   mautic.ClassTransient,
			wantReason:  authv1alpha1.RefreshFailedReason,
			wantMessage: []string{"Mautic did not answer usably, retrying: ", `content type "text/html; charset=UTF-8"`},
		},
		{
			name:        "503",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         tokenError(503, "", ""),
			wantClass:   mautic.ClassTransient,
			wantReason:  authv1alpha1.RefreshFailedReason,
			wantMessage: []string{"Mautic did not answer usably, retrying: ", "HTTP 503"},
		},
		{
			name:        "429 with an error type is still transient",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         tokenError(429, "invalid_client", ""),
			wantClass:   mautic.ClassTransient,
			wantReason:  authv1alpha1.RefreshFailedReason,
			wantMessage: []string{"retrying", "HTTP 429"},
		},
		{
			name:        "another error type is rejected with a general fix",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         tokenError(400, "invalid_request", "Invalid grant_type parameter or parameter missing"),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.RequestRejectedReason,
			wantMessage: []string{"invalid_request", "check spec.url, spec.grant and the credentials in " + credentialsRef},
		},
		{
			name:  "forbidden address",
			grant: authv1alpha1.GrantClientCredentials,
			err: wrapped(&net.OpError{Op: "dial", Net: "tcp",
				Err: &mautic.ForbiddenAddressError{Host: "metadata.internal", IP: "169.254.169.254"}}),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.ForbiddenAddressReason,
			wantMessage: []string{"169.254.169.254", "--allow-link-local-targets"},
		},
		{
			name:        "unknown authority",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         wrapped(x509.UnknownAuthorityError{}),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.TLSErrorReason,
			wantMessage: []string{"certificate signed by unknown authority", "ca.crt", "spec.tls.caSecretRef"},
		},
		{
			name:        "hostname mismatch",
			grant:       authv1alpha1.GrantBasic,
			err:         wrapped(x509.HostnameError{Host: "mautic.example.com", Certificate: &x509.Certificate{}}),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.TLSErrorReason,
			wantMessage: []string{"spec.tls.caSecretRef"},
		},
		{
			name:        "expired certificate",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         wrapped(x509.CertificateInvalidError{Reason: x509.Expired}),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.TLSErrorReason,
			wantMessage: []string{"spec.tls.caSecretRef"},
		},
		{
			name:        "tls certificate verification",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         wrapped(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.TLSErrorReason,
			wantMessage: []string{"spec.tls.caSecretRef"},
		},
		{
			name:        "connection refused",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}),
			wantClass:   mautic.ClassTransient,
			wantReason:  authv1alpha1.RefreshFailedReason,
			wantMessage: []string{"Mautic did not answer usably, retrying: ", "connection refused"},
		},
		{
			name:        "deadline",
			grant:       authv1alpha1.GrantBasic,
			err:         wrapped(context.DeadlineExceeded),
			wantClass:   mautic.ClassTransient,
			wantReason:  authv1alpha1.RefreshFailedReason,
			wantMessage: []string{"retrying", "context deadline exceeded"},
		},
		{
			name:        "unknown error",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         errors.New("boom"),
			wantClass:   mautic.ClassTransient,
			wantReason:  authv1alpha1.RefreshFailedReason,
			wantMessage: []string{"retrying: boom"},
		},
		{
			name:        "configuration error from the client",
			grant:       authv1alpha1.GrantClientCredentials,
			err:         &mautic.ConfigError{Field: "caCert", Message: "holds no certificate"},
			wantClass:   mautic.ClassConfiguration,
			wantReason:  authv1alpha1.RequestRejectedReason,
			wantMessage: []string{"invalid Mautic caCert: holds no certificate"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			f := describeFailure(failureScope(tc.grant), tc.err)

			g.Expect(f.class).To(Equal(tc.wantClass), "class")
			g.Expect(f.reason).To(Equal(tc.wantReason), "reason: %s", f.message)
			for _, fragment := range tc.wantMessage {
				g.Expect(f.message).To(ContainSubstring(fragment))
			}
			g.Expect(f.retryAfter).To(BeZero(), "the backoff is phaseFailed's to set")
			for _, secret := range []string{failureClientID, failureClientSecret, failureUsername, failurePassword} {
				g.Expect(f.message).NotTo(ContainSubstring(secret))
			}
		})
	}
}

func TestActionFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reason string
		want   string
	}{
		{authv1alpha1.NoTokenReason, "IssueToken"},
		{authv1alpha1.RenewalDueReason, "RefreshToken"},
		{authv1alpha1.CredentialsChangedReason, "RefreshToken"},
		{"", "RefreshToken"},
	}
	for _, tc := range tests {
		t.Run(tc.want+"_for_"+tc.reason, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(actionFor(tc.reason)).To(Equal(tc.want))
		})
	}
}
