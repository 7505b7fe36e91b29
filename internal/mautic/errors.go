package mautic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Op names the kind of request that failed, so that an error can say which endpoint answered.
type Op string

const (
	// OpToken is a request to the OAuth2 token endpoint.
	OpToken Op = "token"
	// OpVerify is an authenticated API request made by Client.Verify.
	OpVerify Op = "verify"
)

// endpoint is how an error message names the endpoint that answered.
func (op Op) endpoint() string {
	if op == OpToken {
		return "Mautic token endpoint"
	}
	return "Mautic API"
}

// Limits that keep a hostile or broken server from filling an error message.
const (
	maxErrorTypeBytes    = 128
	maxErrorMessageBytes = 512
)

// Error is an error answer from Mautic or another OAuth2 server: Mautic's
// {"errors":[{"message","code","type"}]} or RFC 6749's {"error","error_description"}.
type Error struct {
	// Op is the request that got this answer.
	Op Op
	// Grant is the grant of the token request (OpToken only; empty when unknown).
	Grant Grant
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Type is errors[0].type, or RFC 6749's "error"; empty when the server sent none.
	Type string
	// Code is errors[0].code (0 for RFC 6749 answers).
	Code int
	// Message is errors[0].message or error_description. It is translated by Mautic:
	// show it, never match on it.
	Message string
}

// Error returns one line naming the endpoint, the HTTP status, the error type and Mautic's message.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s answered HTTP %d", e.Op.endpoint(), e.StatusCode)
	if e.Type != "" {
		b.WriteString(" ")
		b.WriteString(printable(e.Type))
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	return b.String()
}

// UnexpectedResponseError is an answer that is not the JSON we expect: an HTML login page, a
// proxy or WAF page, malformed JSON, a redirect, an oversized body or a token answer without
// an access token.
type UnexpectedResponseError struct {
	// Op is the request that got this answer.
	Op Op
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// ContentType is the Content-Type header as sent ("" when absent).
	ContentType string
	// Detail says what was wrong, e.g. "not JSON", "malformed JSON", "no access_token".
	Detail string
}

// Error returns one line naming the endpoint, status, content type, the problem and the likely fix.
func (e *UnexpectedResponseError) Error() string {
	contentType := "no content type"
	if e.ContentType != "" {
		contentType = fmt.Sprintf("content type %q", e.ContentType)
	}
	hint := "check that spec.url is the Mautic site URL and that no proxy or login page is in the way"
	if e.StatusCode == http.StatusNotFound {
		hint = "check spec.url and the path: a site without URL rewriting needs /index.php at the end of spec.url, " +
			"and Mautic before 4.4.2 answers 404 on the API until its cache is cleared"
	}
	return fmt.Sprintf("%s answered HTTP %d with %s, %s: %s", e.Op.endpoint(), e.StatusCode, contentType, e.Detail, hint)
}

// UnusableAnswerError is a 2xx answer to a refresh_token grant that could not be used: not
// JSON, larger than the size limit, malformed or cut-short JSON, not an object, no access_token,
// or an unreadable expires_in or refresh_token. Mautic deletes the presented refresh token in the
// request that issues the new one, so the server may have rotated it: RefreshToken holds the new
// refresh token when one could be recovered from the part of the body that was read.
// errors.As finds the embedded *UnexpectedResponseError, and Classify treats it as that.
type UnusableAnswerError struct {
	// UnexpectedResponseError describes the answer and what was wrong with it.
	*UnexpectedResponseError
	// Grant is the grant of the token request (GrantRefreshToken).
	Grant Grant
	// RefreshToken is the refresh token recovered from the answer; "" when none could be read.
	// Never put it in a message or a log.
	RefreshToken string
}

// Error describes the answer and says whether a new refresh token was recovered, never showing it.
func (e *UnusableAnswerError) Error() string {
	message := "Mautic token endpoint answered with an unusable answer"
	if e.UnexpectedResponseError != nil {
		message = e.UnexpectedResponseError.Error()
	}
	if e.RefreshToken != "" {
		return message + "; Mautic may have rotated the refresh token: the new one was recovered from the answer"
	}
	return message + "; Mautic may have rotated the refresh token and no new one could be read from the answer"
}

// Unwrap returns the embedded *UnexpectedResponseError.
func (e *UnusableAnswerError) Unwrap() error {
	if e.UnexpectedResponseError == nil {
		return nil
	}
	return e.UnexpectedResponseError
}

// MayHaveRotated reports whether the server answered a refresh_token grant with 2xx: it may have
// deleted the presented refresh token and issued a new one, so the presented one may be spent.
func (e *UnusableAnswerError) MayHaveRotated() bool {
	return e != nil && e.Grant == GrantRefreshToken && e.UnexpectedResponseError != nil &&
		e.StatusCode >= 200 && e.StatusCode < 300
}

// ForbiddenAddressError reports a target that is, or resolved to, an address in a denied range
// (Options.DenyTargetCIDRs: link-local, unspecified and cloud metadata addresses by default), or
// a cloud metadata host name, while such targets are not allowed (Options.AllowLinkLocal).
type ForbiddenAddressError struct {
	// Host is the host name the request was for.
	Host string
	// IP is the address it resolved to (or the literal address); empty for a refused metadata host name.
	IP string
}

// Error names the host and address and says why it was refused.
func (e *ForbiddenAddressError) Error() string {
	target := printable(e.Host)
	if e.IP != "" && e.IP != e.Host {
		target += " at " + e.IP
	}
	return fmt.Sprintf("refusing to connect to %s: link-local, unspecified and cloud metadata addresses (and any other denied "+
		"address range) are not allowed as Mautic targets unless the operator is started with them allowed", target)
}

// ConfigError reports a request that cannot be sent as given: a bad site URL, an unusable CA
// bundle or a missing grant parameter. Nothing was sent; a person must fix the input.
type ConfigError struct {
	// Field names the input at fault, e.g. "url", "caCert", "clientID".
	Field string
	// Message says what is wrong and how to fix it.
	Message string
}

// Error returns the message, prefixed with the field at fault.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid Mautic %s: %s", e.Field, e.Message)
}

// Class is what a caller should do about an error.
type Class int

const (
	// ClassTransient means retry with backoff and keep the current token.
	ClassTransient Class = iota
	// ClassConfiguration means a person must fix the spec, a Secret or Mautic's settings; do not retry in a loop.
	ClassConfiguration
	// ClassReauthorization means the refresh token is gone (invalid_grant on the token endpoint).
	ClassReauthorization
)

// String returns the class name, for logs and tests.
func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "Transient"
	case ClassConfiguration:
		return "Configuration"
	case ClassReauthorization:
		return "Reauthorization"
	default:
		return "Class(" + strconv.Itoa(int(c)) + ")"
	}
}

// configurationTypes are OAuth2 and Mautic error types that only a person can fix.
var configurationTypes = map[string]bool{
	"invalid_client":         true,
	"unauthorized_client":    true,
	"api_disabled":           true,
	"invalid_request":        true,
	"invalid_scope":          true,
	"unsupported_grant_type": true,
	"redirect_uri_mismatch":  true,
	"access_denied":          true,
}

// Classify tells whether err is transient, needs a person to fix the configuration, or needs
// the connection to be authorized again. Unknown errors (and nil) are ClassTransient, and so are
// *HostBusyError (retry after its RetryAfter) and *InvalidTokenError (the server may issue a
// usable token next time).
func Classify(err error) Class {
	if err == nil {
		return ClassTransient
	}
	var configErr *ConfigError
	if errors.As(err, &configErr) {
		return ClassConfiguration
	}
	var forbidden *ForbiddenAddressError
	if errors.As(err, &forbidden) {
		return ClassConfiguration
	}
	var mauticErr *Error
	if errors.As(err, &mauticErr) {
		return classifyError(mauticErr)
	}
	var unexpected *UnexpectedResponseError
	if errors.As(err, &unexpected) {
		// 404 is a wrong path; a redirect (http to https, or to a login page) is a wrong spec.url.
		// Neither heals by retrying.
		if unexpected.StatusCode == http.StatusNotFound || (unexpected.StatusCode >= 300 && unexpected.StatusCode < 400) {
			return ClassConfiguration
		}
		return ClassTransient
	}
	if IsCertificateError(err) {
		return ClassConfiguration
	}
	// Network errors, timeouts, refused connections, context deadlines and anything unknown.
	return ClassTransient
}

// requestError is a request that got no answer that could be read: a transport failure, a
// timeout, a cancelled context, a refused target. It remembers whether the request may have
// reached the server, for IsAmbiguous.
type requestError struct {
	// message names the endpoint and the failure; it never holds a credential: the request's
	// secrets are redacted from the failure's text, which is bounded.
	message string
	// err is the failure, for errors.Is and errors.As. Its own text is as net/http made it, and
	// may quote what the server sent: show Error(), never err's text.
	err error
	// mayHaveSent is true once a connection was handed the request: from then on the server may
	// have received it, whatever happened next.
	mayHaveSent bool
}

// Error returns the message.
func (e *requestError) Error() string { return e.message }

// Unwrap returns the failure.
func (e *requestError) Unwrap() error { return e.err }

// IsAmbiguous reports whether err leaves unknown what the server did: the request may have
// reached the server and been acted on (a refresh_token grant may have rotated the refresh
// token), but no answer was read. That is, for errors from Client.Token:
//   - a timeout, a cancelled context, a reset or closed connection or a body cut short once the
//     request was handed to a connection;
//   - an *UnusableAnswerError from which no refresh token could be recovered.
//
// It is false for nil, for answers that were read (*Error, *UnexpectedResponseError, an
// *UnusableAnswerError with a recovered refresh token) and for failures before anything was
// sent: *ConfigError, *ForbiddenAddressError, *HostBusyError, refused connections, DNS failures,
// TLS handshake and certificate errors. It is false for an *InvalidTokenError (from
// CheckAccessToken, after an answer was read). For an error not made by this package's Client it
// judges by the kind of failure alone.
func IsAmbiguous(err error) bool {
	if err == nil {
		return false
	}
	var unusable *UnusableAnswerError
	if errors.As(err, &unusable) {
		return unusable.MayHaveRotated() && unusable.RefreshToken == ""
	}
	var mauticErr *Error
	var unexpected *UnexpectedResponseError
	var configErr *ConfigError
	var forbidden *ForbiddenAddressError
	var busy *HostBusyError
	var invalid *InvalidTokenError
	if errors.As(err, &mauticErr) || errors.As(err, &unexpected) || errors.As(err, &configErr) || errors.As(err, &forbidden) ||
		errors.As(err, &busy) || errors.As(err, &invalid) {
		return false
	}
	var reqErr *requestError
	if errors.As(err, &reqErr) {
		return reqErr.mayHaveSent
	}
	return failedAfterSending(err)
}

// failedAfterSending judges a transport failure that carries no record of what was sent: a
// failure to connect (dial, DNS, TLS) is not ambiguous, a timeout, a cancelled context or a
// connection that broke is.
func failedAfterSending(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false
	}
	var dnsErr *net.DNSError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	if errors.As(err, &dnsErr) || IsCertificateError(err) || errors.As(err, &recordErr) || errors.As(err, &alertErr) {
		return false
	}
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &netErr) && netErr.Timeout() ||
		strings.Contains(err.Error(), "server closed idle connection") // net/http's unexported errServerClosedIdle
}

// classifyError applies the rules for an error answer from the server.
func classifyError(e *Error) Class {
	switch {
	case e.StatusCode >= 500, e.StatusCode == http.StatusTooManyRequests, e.StatusCode == http.StatusRequestTimeout:
		return ClassTransient
	case configurationTypes[e.Type]:
		return ClassConfiguration
	case e.Type == "invalid_grant" && e.Op == OpToken:
		// invalid_grant on a client_credentials or password request means wrong credentials
		// (oauth2-php answers a wrong password with it), not a lost refresh token.
		if e.Grant == GrantClientCredentials || e.Grant == GrantPassword {
			return ClassConfiguration
		}
		return ClassReauthorization
	case e.Op == OpVerify && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden):
		return ClassConfiguration
	case e.StatusCode >= 400:
		return ClassConfiguration
	default:
		return ClassTransient
	}
}

// IsCertificateError reports whether err is a failure to verify the server's TLS certificate:
// an unknown authority, a name that does not match, or a certificate that is not valid.
func IsCertificateError(err error) bool {
	var verifyErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verifyErr) || errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// parseErrorBody reads an error answer: Mautic's {"errors":[{...}]}, RFC 6749's
// {"error":"...","error_description":"..."}, or Mautic's older {"error":{"message","code"}}.
// A body it cannot read gives an *Error with only Op and StatusCode set.
func parseErrorBody(op Op, statusCode int, body []byte) *Error {
	return parseRedactedErrorBody(op, statusCode, body, nil)
}

// parseRedactedErrorBody is parseErrorBody with the secrets redacted from the type and the
// message before they are clipped (so that no part of a secret survives at the cut).
func parseRedactedErrorBody(op Op, statusCode int, body []byte, secrets *redactor) *Error {
	result := &Error{Op: op, StatusCode: statusCode}
	text := func(raw json.RawMessage, limit int) string {
		return clip(secrets.redact(jsonString(raw)), limit)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return result
	}
	if raw, ok := top["errors"]; ok {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
			var first map[string]json.RawMessage
			if json.Unmarshal(list[0], &first) == nil {
				result.Type = text(first["type"], maxErrorTypeBytes)
				result.Message = text(first["message"], maxErrorMessageBytes)
				result.Code = jsonInt(first["code"])
				if result.Type != "" || result.Message != "" {
					return result
				}
			}
		}
	}
	if raw, ok := top["error"]; ok {
		if jsonString(raw) != "" {
			result.Type = text(raw, maxErrorTypeBytes)
			result.Message = text(top["error_description"], maxErrorMessageBytes)
			return result
		}
		var object map[string]json.RawMessage
		if json.Unmarshal(raw, &object) == nil {
			result.Message = text(object["message"], maxErrorMessageBytes)
			result.Code = jsonInt(object["code"])
		}
	}
	return result
}

// jsonString returns raw as a string when it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// jsonInt returns raw as an int when it is a JSON integer or a string holding one, else 0.
func jsonInt(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		n = json.Number(s)
	}
	i, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil {
		return 0
	}
	return int(i)
}

// clip makes s valid UTF-8 and cuts it to at most max bytes on a rune boundary.
// A non-empty s stays non-empty.
func clip(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// printable returns s as is when it is a plain token (letters, digits, "_", "-", "."), else quoted,
// so that a hostile server cannot break an error message over lines.
func printable(s string) string {
	for _, r := range s {
		if r != '_' && r != '-' && r != '.' && r != ':' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return strconv.Quote(s)
		}
	}
	return s
}
