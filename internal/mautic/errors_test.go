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
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
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
		{"unusable refresh answer", &UnusableAnswerError{Grant: GrantRefreshToken, RefreshToken: "rt",
			UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: 200, Detail: "not JSON"}}, ClassTransient},
		{"unusable refresh answer, no token", fmt.Errorf("refreshing: %w", &UnusableAnswerError{Grant: GrantRefreshToken,
			UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: 200, Detail: "no access_token"}}), ClassTransient},
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
			name: "unusable refresh answer, token recovered",
			err: &UnusableAnswerError{Grant: GrantRefreshToken, RefreshToken: "rt-new",
				UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: 200, ContentType: "text/plain", Detail: "not JSON"}},
			want: `Mautic token endpoint answered HTTP 200 with content type "text/plain", not JSON: check that spec.url is the Mautic site URL ` +
				`and that no proxy or login page is in the way; Mautic may have rotated the refresh token: the new one was recovered from the answer`,
		},
		{
			name: "unusable refresh answer, token lost",
			err: &UnusableAnswerError{Grant: GrantRefreshToken,
				UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: 200, ContentType: "application/json", Detail: "no access_token"}},
			want: `Mautic token endpoint answered HTTP 200 with content type "application/json", no access_token: check that spec.url is the Mautic ` +
				`site URL and that no proxy or login page is in the way; Mautic may have rotated the refresh token and no new one could be read from the answer`,
		},
		{
			name: "unusable answer without its description",
			err:  &UnusableAnswerError{Grant: GrantRefreshToken},
			want: `Mautic token endpoint answered with an unusable answer; Mautic may have rotated the refresh token and no new one could be read from the answer`,
		},
		{
			name: "forbidden",
			err:  &ForbiddenAddressError{Host: "evil.example.com", IP: "169.254.169.254"},
			want: "refusing to connect to evil.example.com at 169.254.169.254: link-local, unspecified and cloud metadata addresses " +
				"(and any other denied address range) are not allowed as Mautic targets unless the operator is started with them allowed",
		},
		{
			name: "host busy",
			err:  &HostBusyError{Host: "m.example.com:443", Reason: HostBusyCircuitOpen, RetryAfter: 30 * time.Second},
			want: "not sending a request to Mautic at m.example.com:443: circuit open; retry after 30s",
		},
		{
			name: "invalid token",
			err:  &InvalidTokenError{Kind: AccessTokenKind, Reason: "it is empty"},
			want: "the server issued an unusable access token: it is empty",
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

func TestIsAmbiguous(t *testing.T) {
	t.Parallel()
	// ccTo is a client_credentials request to baseURL.
	ccTo := func(baseURL string) TokenRequest {
		return TokenRequest{Site: Site{BaseURL: baseURL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"}
	}
	// tokenErr makes req with a fast client and returns its error.
	tokenErr := func(ctx context.Context, req TokenRequest) error {
		_, err := New(fastOptions()).Token(ctx, req)
		return err
	}
	// faultErr makes a client_credentials request to a Mautic test server answering with fault.
	faultErr := func(t *testing.T, fault mautictest.Fault, timeout time.Duration) error {
		s := mautictest.NewServerFor(t)
		s.SetSlowDelay(time.Hour)
		s.InjectFault(fault, 1)
		opts := fastOptions()
		opts.Timeout = timeout
		_, err := New(opts).Token(context.Background(), ccRequest(s, s.NewClient("crm", true)))
		return err
	}
	wrapped := func(err error) error {
		return &url.Error{Op: "Post", URL: "https://m.example.com/oauth/v2/token", Err: err}
	}
	cases := []struct {
		name string
		err  func(t *testing.T) error
		want bool
	}{
		{"nil", func(*testing.T) error { return nil }, false},

		// Nothing was sent.
		{"connection refused", func(t *testing.T) error {
			listener, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := listener.Addr().String()
			_ = listener.Close()
			return tokenErr(context.Background(), ccTo("http://"+addr))
		}, false},
		{"DNS failure", func(*testing.T) error {
			return tokenErr(context.Background(), ccTo("http://no-such-host.invalid"))
		}, false},
		{"TLS certificate", func(t *testing.T) error {
			s := mautictest.NewTLSServer()
			t.Cleanup(s.Close)
			return tokenErr(context.Background(), ccTo(s.URL()))
		}, false},
		{"TLS handshake with a plain HTTP server", func(t *testing.T) error {
			srv := rawServer(t, answerWith(200, "application/json", `{"access_token":"at"}`))
			return tokenErr(context.Background(), ccTo(strings.Replace(srv.URL, "http://", "https://", 1)))
		}, false},
		{"rate limited", func(t *testing.T) error {
			s := mautictest.NewServerFor(t)
			c := New(Options{RequestsPerSecond: 0.001, Burst: 1})
			req := ccRequest(s, s.NewClient("crm", true))
			if _, err := c.Token(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			_, err := c.Token(context.Background(), req)
			return err
		}, false},
		{"plain http not allowed", func(t *testing.T) error {
			srv := rawServer(t, answerWith(200, "application/json", `{"access_token":"at"}`))
			return tokenErr(context.Background(), TokenRequest{Site: Site{BaseURL: srv.URL}, Grant: GrantClientCredentials,
				ClientID: "1_a", ClientSecret: "s3cret"})
		}, false},
		{"invalid access token", func(*testing.T) error { return CheckAccessToken("a b") }, false},
		{"context cancelled before sending", func(t *testing.T) error {
			srv := rawServer(t, answerWith(200, "application/json", `{"access_token":"at"}`))
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return tokenErr(ctx, ccTo(srv.URL))
		}, false},
		{"forbidden address", func(*testing.T) error {
			return tokenErr(context.Background(), ccTo("http://169.254.169.254"))
		}, false},
		{"missing client id", func(*testing.T) error {
			return tokenErr(context.Background(), TokenRequest{Site: Site{BaseURL: "https://m.example.com"}, Grant: GrantClientCredentials})
		}, false},

		// Answers that were read.
		{"Mautic error answer", func(t *testing.T) error { return faultErr(t, mautictest.FaultServerError, time.Second) }, false},
		{"invalid_grant", func(t *testing.T) error {
			s := mautictest.NewServerFor(t)
			app := s.NewClient("cli", false)
			return tokenErr(context.Background(), TokenRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Grant: GrantRefreshToken,
				ClientID: app.ID, ClientSecret: app.Secret, RefreshToken: "unknown"})
		}, false},
		{"HTML answer", func(t *testing.T) error { return faultErr(t, mautictest.FaultHTML, time.Second) }, false},
		{"unusable refresh answer, token recovered", func(t *testing.T) error {
			srv := rawServer(t, answerWith(200, "text/plain", `{"access_token":"at","refresh_token":"rt-new"}`))
			req := ccTo(srv.URL)
			req.Grant, req.RefreshToken = GrantRefreshToken, "rt"
			return tokenErr(context.Background(), req)
		}, false},

		// The request may have been acted on, and no answer was read.
		{"unusable refresh answer, no token", func(t *testing.T) error {
			srv := rawServer(t, answerWith(200, "application/json", `{"unexpected":true}`))
			req := ccTo(srv.URL)
			req.Grant, req.RefreshToken = GrantRefreshToken, "rt"
			return tokenErr(context.Background(), req)
		}, true},
		{"timeout after sending", func(t *testing.T) error { return faultErr(t, mautictest.FaultSlow, 100*time.Millisecond) }, true},
		{"context cancelled after sending", func(t *testing.T) error {
			received := make(chan struct{}, 1)
			srv := rawServer(t, func(_ http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm() // the request's context ends with the connection once the body is read
				received <- struct{}{}
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-received
				cancel()
			}()
			return tokenErr(ctx, ccTo(srv.URL))
		}, true},
		{"connection closed after reading the request", func(t *testing.T) error {
			return faultErr(t, mautictest.FaultDropAfterRead, time.Second)
		}, true},
		{"connection reset after reading the request", func(t *testing.T) error {
			srv := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				if tcp, ok := conn.(*net.TCPConn); ok {
					_ = tcp.SetLinger(0) // close with RST
				}
				_ = conn.Close()
			})
			return tokenErr(context.Background(), ccTo(srv.URL))
		}, true},
		{"answer cut short", func(t *testing.T) error {
			return tokenErr(context.Background(), ccTo(rawServer(t, cutShort(`{"access_token":"at"`)).URL))
		}, true},
		{"verify timeout after sending", func(t *testing.T) error {
			s := mautictest.NewServerFor(t)
			s.SetSlowDelay(time.Hour)
			s.InjectFault(mautictest.FaultSlow, 1)
			opts := fastOptions()
			opts.Timeout = 100 * time.Millisecond
			_, err := New(opts).Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization("t")})
			return err
		}, true},

		// Errors not made by this package's client are judged by their kind.
		{"foreign deadline", func(*testing.T) error { return wrapped(context.DeadlineExceeded) }, true},
		{"foreign cancel", func(*testing.T) error { return context.Canceled }, true},
		{"foreign unexpected EOF", func(*testing.T) error { return wrapped(io.ErrUnexpectedEOF) }, true},
		{"foreign reset", func(*testing.T) error {
			return wrapped(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})
		}, true},
		{"foreign server closed idle connection", func(*testing.T) error {
			return wrapped(errors.New("http: server closed idle connection"))
		}, true},
		{"foreign refused dial", func(*testing.T) error {
			return wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
		}, false},
		{"foreign dial timeout", func(*testing.T) error {
			return wrapped(&net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded})
		}, false},
		{"foreign DNS failure", func(*testing.T) error {
			return wrapped(&net.DNSError{Err: "no such host", Name: "m.example.com", IsNotFound: true})
		}, false},
		{"foreign certificate", func(*testing.T) error { return wrapped(x509.UnknownAuthorityError{}) }, false},
		{"foreign TLS record", func(*testing.T) error {
			return wrapped(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"})
		}, false},
		{"foreign unknown", func(*testing.T) error { return errors.New("boom") }, false},
		{"foreign Mautic error", func(*testing.T) error { return fmt.Errorf("refreshing: %w", &Error{Op: OpToken, StatusCode: 400}) }, false},
		{"foreign unusable answer without token", func(*testing.T) error {
			return fmt.Errorf("refreshing: %w", &UnusableAnswerError{Grant: GrantRefreshToken,
				UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: 200, Detail: "not JSON"}})
		}, true},
		{"unusable answer with a non-2xx status", func(*testing.T) error {
			return &UnusableAnswerError{Grant: GrantRefreshToken, UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: 502}}
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			err := tc.err(t)
			if tc.name != "nil" {
				g.Expect(err).To(HaveOccurred())
			}
			g.Expect(IsAmbiguous(err)).To(Equal(tc.want), "%T %v", err, err)
			if err != nil {
				expectNoSecrets(g, err, "s3cret", "rt-new")
			}
		})
	}
}

func TestUnusableAnswerError(t *testing.T) {
	t.Parallel()
	answer := func(grant Grant, status int) *UnusableAnswerError {
		return &UnusableAnswerError{Grant: grant, UnexpectedResponseError: &UnexpectedResponseError{Op: OpToken, StatusCode: status}}
	}
	cases := []struct {
		name           string
		err            *UnusableAnswerError
		mayHaveRotated bool
	}{
		{"refresh 200", answer(GrantRefreshToken, 200), true},
		{"refresh 204", answer(GrantRefreshToken, 204), true},
		{"refresh 502", answer(GrantRefreshToken, 502), false},
		{"client_credentials 200", answer(GrantClientCredentials, 200), false},
		{"no description", &UnusableAnswerError{Grant: GrantRefreshToken}, false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(tc.err.MayHaveRotated()).To(Equal(tc.mayHaveRotated))
		})
	}
	t.Run("unwraps to the unexpected answer", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		err := answer(GrantRefreshToken, 200)
		var unexpected *UnexpectedResponseError
		g.Expect(errors.As(fmt.Errorf("refreshing: %w", err), &unexpected)).To(BeTrue())
		g.Expect(unexpected).To(BeIdenticalTo(err.UnexpectedResponseError))
		g.Expect((&UnusableAnswerError{}).Unwrap()).NotTo(HaveOccurred())
	})
}
