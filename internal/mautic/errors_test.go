package mautic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tokenError := func(status int, errorType string) *Error {
		return &Error{Op: OpToken, Grant: GrantRefreshToken, StatusCode: status, Type: errorType, Code: status}
	}
	verifyError := func(status int, errorType string) *Error {
		return &Error{Op: OpVerify, StatusCode: status, Type: errorType, Code: status}
	}
	wrapped := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://m.example.com/oauth/v2/token", Err: err}
	}
	cases := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, ClassTransient},
		{"invalid_client", tokenError(400, "invalid_client"), ClassConfiguration},
		{"unauthorized_client", tokenError(400, "unauthorized_client"), ClassConfiguration},
		{"api_disabled", tokenError(403, "api_disabled"), ClassConfiguration},
		{"api_disabled on verify", verifyError(403, "api_disabled"), ClassConfiguration},
		{"invalid_request", tokenError(400, "invalid_request"), ClassConfiguration},
		{"invalid_scope", tokenError(400, "invalid_scope"), ClassConfiguration},
		{"unsupported_grant_type", tokenError(400, "unsupported_grant_type"), ClassConfiguration},
		{"redirect_uri_mismatch", tokenError(400, "redirect_uri_mismatch"), ClassConfiguration},
		{"access_denied", tokenError(403, "access_denied"), ClassConfiguration},
		{"RFC 6749 invalid_client 401", &Error{Op: OpToken, StatusCode: 401, Type: "invalid_client"}, ClassConfiguration},
		{"invalid_grant on refresh", tokenError(400, "invalid_grant"), ClassReauthorization},
		{"invalid_grant, grant unknown", &Error{Op: OpToken, StatusCode: 400, Type: "invalid_grant"}, ClassReauthorization},
		{"invalid_grant on code exchange", &Error{Op: OpToken, Grant: GrantAuthorizationCode, StatusCode: 400, Type: "invalid_grant"}, ClassReauthorization},
		{"invalid_grant on client_credentials", &Error{Op: OpToken, Grant: GrantClientCredentials, StatusCode: 400, Type: "invalid_grant"}, ClassConfiguration},
		{"invalid_grant on password", &Error{Op: OpToken, Grant: GrantPassword, StatusCode: 400, Type: "invalid_grant"}, ClassConfiguration},
		{"wrapped invalid_grant", fmt.Errorf("refreshing: %w", tokenError(400, "invalid_grant")), ClassReauthorization},
		{"invalid_grant on verify", verifyError(401, "invalid_grant"), ClassConfiguration},
		{"untyped 401 on verify", verifyError(401, ""), ClassConfiguration},
		{"untyped 403 on verify", verifyError(403, ""), ClassConfiguration},
		{"500", tokenError(500, ""), ClassTransient},
		{"503", verifyError(503, ""), ClassTransient},
		{"429 wins over type", tokenError(429, "invalid_client"), ClassTransient},
		{"408", tokenError(408, ""), ClassTransient},
		{"404 error body", verifyError(404, ""), ClassConfiguration},
		{"other 4xx", tokenError(418, ""), ClassConfiguration},
		{"error answer with 200", tokenError(200, ""), ClassTransient},
		{"HTML 200", &UnexpectedResponseError{Op: OpToken, StatusCode: 200, ContentType: "text/html", Detail: "not JSON"}, ClassTransient},
		{"HTML 502", &UnexpectedResponseError{Op: OpVerify, StatusCode: 502, ContentType: "text/html", Detail: "not JSON"}, ClassTransient},
		{"HTML 404", &UnexpectedResponseError{Op: OpVerify, StatusCode: 404, ContentType: "text/html", Detail: "not JSON"}, ClassConfiguration},
		{"wrapped unexpected", wrapped(&UnexpectedResponseError{Op: OpToken, StatusCode: 200, Detail: "malformed JSON"}), ClassTransient},
		{"forbidden address", wrapped(&net.OpError{Op: "dial", Err: &ForbiddenAddressError{Host: "h", IP: "169.254.169.254"}}), ClassConfiguration},
		{"config error", &ConfigError{Field: "url", Message: "x"}, ClassConfiguration},
		{"unknown authority", wrapped(x509.UnknownAuthorityError{}), ClassConfiguration},
		{"hostname", wrapped(x509.HostnameError{Host: "h"}), ClassConfiguration},
		{"certificate invalid", wrapped(x509.CertificateInvalidError{Reason: x509.Expired}), ClassConfiguration},
		{"tls verification", wrapped(&tls.CertificateVerificationError{Err: errors.New("bad")}), ClassConfiguration},
		{"connection refused", wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), ClassTransient},
		{"deadline", wrapped(context.DeadlineExceeded), ClassTransient},
		{"canceled", context.Canceled, ClassTransient},
		{"unknown", errors.New("boom"), ClassTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(Classify(tc.err)).To(Equal(tc.want), "%v", tc.err)
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "Mautic error",
			err:  &Error{Op: OpToken, StatusCode: 400, Type: "invalid_client", Code: 400, Message: "The client credentials are invalid"},
			want: `Mautic token endpoint answered HTTP 400 invalid_client: "The client credentials are invalid"`,
		},
		{
			name: "verify error",
			err:  &Error{Op: OpVerify, StatusCode: 401, Type: "invalid_grant", Message: "The access token provided is invalid."},
			want: `Mautic API answered HTTP 401 invalid_grant: "The access token provided is invalid."`,
		},
		{
			name: "no type, no message",
			err:  &Error{Op: OpVerify, StatusCode: 500},
			want: `Mautic API answered HTTP 500`,
		},
		{
			name: "hostile type",
			err:  &Error{Op: OpToken, StatusCode: 400, Type: "a\nb", Message: "line\nbreak"},
			want: `Mautic token endpoint answered HTTP 400 "a\nb": "line\nbreak"`,
		},
		{
			name: "translated message",
			err:  &Error{Op: OpToken, StatusCode: 400, Type: "invalid_client", Message: "Las credenciales del cliente no son válidas"},
			want: `Mautic token endpoint answered HTTP 400 invalid_client: "Las credenciales del cliente no son válidas"`,
		},
		{
			name: "HTML",
			err:  &UnexpectedResponseError{Op: OpVerify, StatusCode: 200, ContentType: "text/html", Detail: "not JSON"},
			want: `Mautic API answered HTTP 200 with content type "text/html", not JSON: check that spec.url is the Mautic site URL and that no proxy or login page is in the way`,
		},
		{
			name: "404 hint",
			err:  &UnexpectedResponseError{Op: OpToken, StatusCode: 404, Detail: "not JSON"},
			want: `Mautic token endpoint answered HTTP 404 with no content type, not JSON: check spec.url and the path: a site without URL rewriting needs /index.php at the end of spec.url, and Mautic before 4.4.2 answers 404 on the API until its cache is cleared`,
		},
		{
			name: "forbidden",
			err:  &ForbiddenAddressError{Host: "evil.example.com", IP: "169.254.169.254"},
			want: "refusing to connect to evil.example.com at 169.254.169.254: link-local and cloud metadata addresses are not allowed as Mautic targets unless the operator is started with them allowed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(tc.err.Error()).To(Equal(tc.want))
			g.Expect(tc.err.Error()).NotTo(ContainSubstring("\n"))
		})
	}
}

func TestParseErrorBody(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want Error
	}{
		{
			name: "Mautic",
			body: `{"errors":[{"message":"The client credentials are invalid","code":400,"type":"invalid_client"}]}`,
			want: Error{Type: "invalid_client", Code: 400, Message: "The client credentials are invalid"},
		},
		{
			name: "Mautic, null type",
			body: `{"errors":[{"message":"Looks like I encountered an error","code":500,"type":null}]}`,
			want: Error{Code: 500, Message: "Looks like I encountered an error"},
		},
		{
			name: "Mautic, code as string",
			body: `{"errors":[{"message":"m","code":"403","type":"api_disabled"}],"error":"ignored"}`,
			want: Error{Type: "api_disabled", Code: 403, Message: "m"},
		},
		{
			name: "RFC 6749",
			body: `{"error":"invalid_grant","error_description":"Invalid refresh token"}`,
			want: Error{Type: "invalid_grant", Message: "Invalid refresh token"},
		},
		{
			name: "RFC 6749 without description",
			body: `{"error":"invalid_client"}`,
			want: Error{Type: "invalid_client"},
		},
		{
			name: "old Mautic system error",
			body: `{"error":{"message":"You do not have access to the requested area/action.","code":403}}`,
			want: Error{Code: 403, Message: "You do not have access to the requested area/action."},
		},
		{
			name: "empty errors list falls back to error",
			body: `{"errors":[],"error":"access_denied"}`,
			want: Error{Type: "access_denied"},
		},
		{name: "empty object", body: `{}`},
		{name: "array", body: `[1,2]`},
		{name: "not JSON", body: `<html>`},
		{name: "wrong types", body: `{"errors":[{"message":1,"code":true,"type":["x"]}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got := parseErrorBody(OpToken, 400, []byte(tc.body))
			tc.want.Op, tc.want.StatusCode = OpToken, 400
			g.Expect(*got).To(Equal(tc.want))
		})
	}
	t.Run("long message is clipped", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		long := strings.Repeat("é", 1000)
		got := parseErrorBody(OpVerify, 401, []byte(`{"errors":[{"message":"`+long+`","code":401,"type":"x"}]}`))
		g.Expect(len(got.Message)).To(BeNumerically("<=", maxErrorMessageBytes+len("…")))
		g.Expect(strings.ToValidUTF8(got.Message, "?")).To(Equal(got.Message))
	})
}

func FuzzParseErrorBody(f *testing.F) {
	for _, seed := range []string{
		`{"errors":[{"message":"The client credentials are invalid","code":400,"type":"invalid_client"}]}`,
		`{"errors":[{"message":"x","code":500,"type":null}]}`,
		`{"error":"invalid_grant","error_description":"Invalid refresh token"}`,
		`{"error":{"message":"m","code":403}}`,
		`{"errors":[{"type":"\u0000"}]}`,
		`{"errors":[{"type":"\xff"}]}`,
		`{"errors":{"type":"x"}}`,
		`{"errors":[],"error":" "}`,
		`{"errors":[{"code":1e99}]}`,
		`[]`, `null`, `"x"`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := parseErrorBody(OpToken, 400, body)
		if got == nil {
			t.Fatal("parseErrorBody returned nil")
		}
		if message := got.Error(); strings.Contains(message, "\n") {
			t.Fatalf("Error() is not one line: %q", message)
		}
		if want := bodyErrorType(body); want != "" && got.Type == "" {
			t.Fatalf("body %q has error type %q, parsed an empty Type", body, want)
		}
	})
}

// bodyErrorType is the fuzz oracle: errors[0].type when it is a non-empty string, else "error"
// when the body has no "errors" key and "error" is a non-empty string.
func bodyErrorType(body []byte) string {
	var top map[string]any
	if json.Unmarshal(body, &top) != nil {
		return ""
	}
	if list, ok := top["errors"].([]any); ok && len(list) > 0 {
		if first, ok := list[0].(map[string]any); ok {
			if errorType, ok := first["type"].(string); ok && errorType != "" {
				return errorType
			}
		}
	}
	if _, hasErrors := top["errors"]; hasErrors {
		return ""
	}
	errorType, _ := top["error"].(string)
	return errorType
}
