package mautic

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// fastOptions are client options for tests: no rate limit, short timeout.
func fastOptions() Options {
	return Options{Timeout: 5 * time.Second, RequestsPerSecond: -1}
}

// ccRequest is a client_credentials request for app on s.
func ccRequest(s *mautictest.Server, app mautictest.ClientApp) TokenRequest {
	return TokenRequest{
		Site:         Site{BaseURL: s.URL(), AllowInsecureHTTP: true},
		Grant:        GrantClientCredentials,
		ClientID:     app.ID,
		ClientSecret: app.Secret,
	}
}

// ccRequestWith is a table's request: ccRequest of the allowed client, then changed by mutate.
func ccRequestWith(mutate func(req *TokenRequest)) func(s *mautictest.Server, app, _ mautictest.ClientApp) TokenRequest {
	return func(s *mautictest.Server, app, _ mautictest.ClientApp) TokenRequest {
		req := ccRequest(s, app)
		mutate(&req)
		return req
	}
}

// rawServer starts an httptest server with handler and closes it when the test ends.
func rawServer(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

// recordingServer is rawServer that keeps the last request it got, its form parsed, before
// answering with answer; last returns that request once the client has its answer.
func recordingServer(t *testing.T, answer http.HandlerFunc) (srv *httptest.Server, last func() *http.Request) {
	t.Helper()
	var mu sync.Mutex
	var seen *http.Request
	srv = rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		seen = r
		mu.Unlock()
		answer(w, r)
	})
	return srv, func() *http.Request {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// expectNoSecrets fails when err's message contains any of secrets.
func expectNoSecrets(g Gomega, err error, secrets ...string) {
	for _, secret := range secrets {
		if secret != "" {
			g.Expect(err.Error()).NotTo(ContainSubstring(secret))
		}
	}
}

func TestTokenClientCredentials(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	app := s.NewClient("crm", true)

	tok, err := New(fastOptions()).Token(context.Background(), ccRequest(s, app))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.TokenType).To(Equal("bearer"))
	g.Expect(tok.RefreshToken).To(BeEmpty())
	g.Expect(tok.ExpiresIn).To(Equal(time.Hour))
	g.Expect(s.AccessTokenValid(tok.AccessToken)).To(BeTrue())
	g.Expect(s.TokenRequestsByGrant("client_credentials")).To(Equal(1))
}

func TestTokenSendsCredentialsInTheForm(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	srv, last := recordingServer(t, answerWith(http.StatusOK, "application/json",
		`{"access_token":"at","expires_in":"120","token_type":"Bearer","scope":null}`))
	tok, err := New(fastOptions()).Token(context.Background(), TokenRequest{
		Site: Site{BaseURL: srv.URL + "/", AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_abc", ClientSecret: "s3cret",
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok).To(Equal(&Token{AccessToken: "at", TokenType: "bearer", ExpiresIn: 2 * time.Minute}))
	seen := last()
	g.Expect(seen.Method).To(Equal(http.MethodPost))
	g.Expect(seen.URL.Path).To(Equal("/oauth/v2/token"))
	g.Expect(seen.Header.Get("Authorization")).To(BeEmpty())
	g.Expect(seen.Header.Get("Content-Type")).To(Equal("application/x-www-form-urlencoded"))
	g.Expect(seen.Header.Get("User-Agent")).To(Equal(DefaultUserAgent))
	g.Expect(seen.PostForm.Get("grant_type")).To(Equal("client_credentials"))
	g.Expect(seen.PostForm.Get("client_id")).To(Equal("1_abc"))
	g.Expect(seen.PostForm.Get("client_secret")).To(Equal("s3cret"))
}

func TestTokenErrorAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		request func(s *mautictest.Server, app, noCC mautictest.ClientApp) TokenRequest
		status  int
		errType string
		message string
		class   Class
	}{
		{
			name:    "wrong secret",
			request: ccRequestWith(func(req *TokenRequest) { req.ClientSecret = "wrong-secret" }),
			status:  400, errType: "invalid_client", message: mautictest.MessageInvalidClient, class: ClassConfiguration,
		},
		{
			name:    "unknown client",
			request: ccRequestWith(func(req *TokenRequest) { req.ClientID = "99_unknown" }),
			status:  400, errType: "invalid_client", message: mautictest.MessageInvalidClient, class: ClassConfiguration,
		},
		{
			name: "client_credentials not allowed",
			request: func(s *mautictest.Server, _, noCC mautictest.ClientApp) TokenRequest {
				return ccRequest(s, noCC)
			},
			status: 400, errType: "unauthorized_client", message: mautictest.MessageUnauthorizedClient, class: ClassConfiguration,
		},
		{
			name:    "password grant",
			request: ccRequestWith(func(req *TokenRequest) { req.Grant, req.Username, req.Password = GrantPassword, "admin", "hunter2" }),
			status:  400, errType: "unauthorized_client", message: mautictest.MessageUnauthorizedClient, class: ClassConfiguration,
		},
		{
			name:    "unknown refresh token",
			request: ccRequestWith(func(req *TokenRequest) { req.Grant, req.RefreshToken = GrantRefreshToken, "not-a-refresh-token" }),
			status:  400, errType: "invalid_grant", message: mautictest.MessageInvalidRefreshToken, class: ClassReauthorization,
		},
		{
			name: "unknown authorization code",
			request: ccRequestWith(func(req *TokenRequest) {
				req.Grant, req.Code, req.RedirectURI = GrantAuthorizationCode, "nope", "http://127.0.0.1:8085/callback"
			}),
			status: 400, errType: "invalid_grant", message: mautictest.MessageInvalidCode, class: ClassReauthorization,
		},
		{
			name:    "scope",
			request: ccRequestWith(func(req *TokenRequest) { req.Scopes = []string{"contacts"} }),
			status:  400, errType: "invalid_scope", message: mautictest.MessageUnsupportedScope, class: ClassConfiguration,
		},
		{
			name: "API disabled",
			request: func(s *mautictest.Server, app, _ mautictest.ClientApp) TokenRequest {
				s.SetAPIEnabled(false)
				return ccRequest(s, app)
			},
			status: 403, errType: "api_disabled", message: mautictest.MessageAPIDisabled, class: ClassConfiguration,
		},
		{
			name:    "wrong token path",
			request: ccRequestWith(func(req *TokenRequest) { req.TokenPath = "oauth/v2/tokens" }),
			status:  404, errType: "", message: "Requested URL not found: /oauth/v2/tokens", class: ClassConfiguration,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := mautictest.NewServerFor(t)
			app, noCC := s.NewClient("crm", true), s.NewClient("browser", false)
			req := tc.request(s, app, noCC)
			_, err := New(fastOptions()).Token(context.Background(), req)
			g.Expect(err).To(HaveOccurred())
			var mauticErr *Error
			g.Expect(errors.As(err, &mauticErr)).To(BeTrue(), "%T %v", err, err)
			g.Expect(mauticErr.Op).To(Equal(OpToken))
			g.Expect(mauticErr.Grant).To(Equal(req.Grant))
			g.Expect(mauticErr.StatusCode).To(Equal(tc.status))
			g.Expect(mauticErr.Code).To(Equal(tc.status))
			g.Expect(mauticErr.Type).To(Equal(tc.errType))
			g.Expect(mauticErr.Message).To(Equal(tc.message))
			g.Expect(Classify(err)).To(Equal(tc.class))
			expectNoSecrets(g, err, app.Secret, noCC.Secret, req.ClientSecret, req.RefreshToken, req.Password)
			if req.TokenPath == "" {
				g.Expect(s.TokenRequests()).To(Equal(1))
			}
		})
	}
}

func TestTokenErrorMessage(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	req := ccRequest(s, s.NewClient("crm", true))
	req.ClientSecret = "wrong"
	_, err := New(fastOptions()).Token(context.Background(), req)
	g.Expect(err).To(MatchError(`Mautic token endpoint answered HTTP 400 invalid_client: "The client credentials are invalid"`))
}

func TestTokenRFC6749Errors(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	s.SetRFC6749Errors(true)
	req := ccRequest(s, s.NewClient("crm", true))
	req.ClientSecret = "wrong"
	_, err := New(fastOptions()).Token(context.Background(), req)
	var mauticErr *Error
	g.Expect(errors.As(err, &mauticErr)).To(BeTrue(), "%v", err)
	g.Expect(*mauticErr).To(Equal(Error{Op: OpToken, Grant: GrantClientCredentials, StatusCode: 401, Type: "invalid_client",
		Message: mautictest.MessageInvalidClient}))
	g.Expect(Classify(err)).To(Equal(ClassConfiguration))
}

func TestTokenRawAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		check       func(g Gomega, err error)
		class       Class
	}{
		{
			name: "invalid_request", status: 400, contentType: "application/json",
			body: `{"errors":[{"message":"Invalid grant_type parameter or parameter missing","code":400,"type":"invalid_request"}]}`,
			check: func(g Gomega, err error) {
				g.Expect(err).To(MatchError(ContainSubstring(`invalid_request: "Invalid grant_type parameter or parameter missing"`)))
			},
			class: ClassConfiguration,
		},
		{
			name: "RFC 6749 invalid_grant with charset", status: 400, contentType: "application/json; charset=utf-8",
			body: `{"error":"invalid_grant","error_description":"expired"}`,
			check: func(g Gomega, err error) {
				var mauticErr *Error
				g.Expect(errors.As(err, &mauticErr)).To(BeTrue())
				g.Expect(mauticErr.Type).To(Equal("invalid_grant"))
				g.Expect(mauticErr.Message).To(Equal("expired"))
			},
			class: ClassReauthorization,
		},
		{
			name: "error object with 200", status: 200, contentType: "application/json",
			body: `{"errors":[{"message":"nope","code":400,"type":"invalid_grant"}]}`,
			check: func(g Gomega, err error) {
				var mauticErr *Error
				g.Expect(errors.As(err, &mauticErr)).To(BeTrue())
				g.Expect(mauticErr.StatusCode).To(Equal(200))
			},
			class: ClassReauthorization,
		},
		{
			name: "RFC 6749 error with 200", status: 200, contentType: "application/json",
			body: `{"error":"invalid_grant"}`,
			check: func(g Gomega, err error) {
				var mauticErr *Error
				g.Expect(errors.As(err, &mauticErr)).To(BeTrue())
			},
			class: ClassReauthorization,
		},
		{
			name: "no access_token", status: 200, contentType: "application/json",
			body:  `{"token_type":"bearer","expires_in":3600}`,
			check: expectUnexpected(200, "no access_token"),
			class: ClassTransient,
		},
		{
			name: "expires_in not a number", status: 200, contentType: "application/json",
			body:  `{"access_token":"at","expires_in":"soon"}`,
			check: expectUnexpected(200, "expires_in"),
			class: ClassTransient,
		},
		{
			name: "JSON array", status: 200, contentType: "application/json",
			body:  `[]`,
			check: expectUnexpected(200, "not an object"),
			class: ClassTransient,
		},
		{
			name: "text/plain", status: 200, contentType: "text/plain",
			body:  "access_token=at&token_type=bearer",
			check: expectUnexpected(200, "not JSON"),
			class: ClassTransient,
		},
		{
			name: "proxy page 502", status: 502, contentType: "text/html",
			body:  "<html>Bad Gateway</html>",
			check: expectUnexpected(502, "not JSON"),
			class: ClassTransient,
		},
		{
			name: "HTML 404", status: 404, contentType: "text/html",
			body:  "<html>Not Found</html>",
			check: expectUnexpected(404, "not JSON"),
			class: ClassConfiguration,
		},
		{
			name: "malformed JSON error", status: 400, contentType: "application/json",
			body:  `{"errors":[`,
			check: expectUnexpected(400, "malformed JSON"),
			class: ClassTransient,
		},
		{
			name: "429", status: 429, contentType: "application/json",
			body: `{"errors":[{"message":"Too many requests","code":429,"type":null}]}`,
			check: func(g Gomega, err error) {
				var mauticErr *Error
				g.Expect(errors.As(err, &mauticErr)).To(BeTrue())
				g.Expect(mauticErr.StatusCode).To(Equal(429))
			},
			class: ClassTransient,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			_, err := New(fastOptions()).Token(context.Background(), TokenRequest{
				Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantRefreshToken, ClientID: "1_a", ClientSecret: "s3cret", RefreshToken: "rt-secret",
			})
			g.Expect(err).To(HaveOccurred())
			tc.check(g, err)
			g.Expect(Classify(err)).To(Equal(tc.class))
			expectNoSecrets(g, err, "s3cret", "rt-secret")
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
		})
	}
}

// expectUnexpected checks for an *UnexpectedResponseError with status and a detail containing detail.
func expectUnexpected(status int, detail string) func(g Gomega, err error) {
	return func(g Gomega, err error) {
		var unexpected *UnexpectedResponseError
		g.Expect(errors.As(err, &unexpected)).To(BeTrue(), "%T %v", err, err)
		g.Expect(unexpected.StatusCode).To(Equal(status))
		g.Expect(unexpected.Detail).To(ContainSubstring(detail))
	}
}

func TestTokenFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault mautictest.Fault
		check func(g Gomega, err error)
	}{
		{mautictest.FaultHTML, func(g Gomega, err error) {
			expectUnexpected(200, "not JSON")(g, err)
			g.Expect(err).To(MatchError(`Mautic token endpoint answered HTTP 200 with content type "text/html; charset=UTF-8", not JSON: ` +
				`check that spec.url is the Mautic site URL and that no proxy or login page is in the way`))
		}},
		{mautictest.FaultMalformedJSON, expectUnexpected(200, "malformed JSON")},
		{mautictest.FaultUnavailable, func(g Gomega, err error) {
			var mauticErr *Error
			g.Expect(errors.As(err, &mauticErr)).To(BeTrue())
			g.Expect(mauticErr.StatusCode).To(Equal(503))
		}},
		{mautictest.FaultServerError, func(g Gomega, err error) {
			var mauticErr *Error
			g.Expect(errors.As(err, &mauticErr)).To(BeTrue())
			g.Expect(mauticErr.StatusCode).To(Equal(500))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := mautictest.NewServerFor(t)
			app := s.NewClient("crm", true)
			s.InjectFault(tc.fault, 1)
			c := New(fastOptions())
			_, err := c.Token(context.Background(), ccRequest(s, app))
			g.Expect(err).To(HaveOccurred())
			tc.check(g, err)
			g.Expect(Classify(err)).To(Equal(ClassTransient))
			_, err = c.Token(context.Background(), ccRequest(s, app))
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}

func TestTokenTimeout(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	app := s.NewClient("crm", true)
	s.SetSlowDelay(time.Hour)
	s.InjectFault(mautictest.FaultSlow, 1)
	opts := fastOptions()
	opts.Timeout = 100 * time.Millisecond
	_, err := New(opts).Token(context.Background(), ccRequest(s, app))
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(err.Error()).To(HavePrefix("Mautic token endpoint request to " + s.URL() + "/oauth/v2/token failed"))
	g.Expect(Classify(err)).To(Equal(ClassTransient))

	// A slow answer within the timeout is fine.
	s.SetSlowDelay(10 * time.Millisecond)
	s.InjectFault(mautictest.FaultSlow, 1)
	_, err = New(fastOptions()).Token(context.Background(), ccRequest(s, app))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestBodySizeLimit(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	srv := rawServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"` + strings.Repeat("a", 4096) + `"}`))
	})
	opts := fastOptions()
	opts.MaxBodyBytes = 1024
	c := New(opts)
	_, err := c.Token(context.Background(), TokenRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s"})
	expectUnexpected(200, "larger than 1024 bytes")(g, err)
	g.Expect(Classify(err)).To(Equal(ClassTransient))
	_, err = c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Authorization: BearerAuthorization("t")})
	expectUnexpected(200, "larger than 1024 bytes")(g, err)
}

func TestTokenRefreshRotation(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s, app, c := refreshServer(t)
	seeded := s.IssueRefreshToken(app.ID)
	refresh := func(token string) (*Token, error) {
		return c.Token(context.Background(), TokenRequest{
			Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Grant: GrantRefreshToken, ClientID: app.ID, ClientSecret: app.Secret, RefreshToken: token,
		})
	}
	first, err := refresh(seeded)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(first.RefreshToken).NotTo(BeEmpty())
	g.Expect(first.RefreshToken).NotTo(Equal(seeded))
	g.Expect(first.ExpiresIn).To(Equal(time.Hour))

	_, err = refresh(seeded)
	g.Expect(Classify(err)).To(Equal(ClassReauthorization))
	g.Expect(err).To(MatchError(`Mautic token endpoint answered HTTP 400 invalid_grant: "Invalid refresh token"`))
	g.Expect(s.ReusedRefreshTokens()).To(Equal(1))

	second, err := refresh(first.RefreshToken)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.AccessTokenValid(first.AccessToken)).To(BeTrue())
	g.Expect(s.AccessTokenValid(second.AccessToken)).To(BeTrue())
}

func TestTokenAuthorizationCode(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	const redirect = "http://127.0.0.1:8085/callback"
	app := s.NewClient("cli", false)
	code := s.IssueAuthorizationCode(app.ID, redirect)
	tok, err := New(fastOptions()).Token(context.Background(), TokenRequest{
		Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Grant: GrantAuthorizationCode, ClientID: app.ID, ClientSecret: app.Secret,
		Code: code, RedirectURI: redirect,
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.RefreshToken).NotTo(BeEmpty())
}

func TestTokenRequestValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		req   TokenRequest
		field string
	}{
		{"no client id", TokenRequest{Grant: GrantClientCredentials, ClientSecret: "s"}, "clientID"},
		{"no secret", TokenRequest{Grant: GrantClientCredentials, ClientID: "1_a"}, "clientSecret"},
		{"no refresh token", TokenRequest{Grant: GrantRefreshToken, ClientID: "1_a"}, "refreshToken"},
		{"no username", TokenRequest{Grant: GrantPassword, ClientID: "1_a", Password: "p"}, "username"},
		{"no password", TokenRequest{Grant: GrantPassword, ClientID: "1_a", Username: "u"}, "password"},
		{"no code", TokenRequest{Grant: GrantAuthorizationCode, ClientID: "1_a", RedirectURI: "http://x"}, "code"},
		{"no redirect", TokenRequest{Grant: GrantAuthorizationCode, ClientID: "1_a", Code: "c"}, "redirectURI"},
		{"unknown grant", TokenRequest{Grant: "implicit", ClientID: "1_a"}, "grant"},
		{"bad token path", TokenRequest{Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s", TokenPath: "/oauth/%zz"}, "token path"},
		{"bad url", TokenRequest{Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s", Site: Site{BaseURL: "m.example.com"}}, "url"},
		{"bad CA", TokenRequest{Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s",
			Site: Site{BaseURL: "https://m.example.com", CACert: []byte("not a certificate")}}, "caCert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			if tc.req.BaseURL == "" {
				tc.req.BaseURL = "https://m.example.com"
			}
			observed := 0
			opts := fastOptions()
			opts.Observe = func(Op, Grant, int, time.Duration) { observed++ }
			_, err := New(opts).Token(context.Background(), tc.req)
			var configErr *ConfigError
			g.Expect(errors.As(err, &configErr)).To(BeTrue(), "%v", err)
			g.Expect(configErr.Field).To(Equal(tc.field))
			g.Expect(Classify(err)).To(Equal(ClassConfiguration))
			g.Expect(observed).To(BeZero())
		})
	}
}

func TestIndexPHPBaseURL(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	app := s.NewClient("crm", true)
	c := New(fastOptions())
	req := ccRequest(s, app)
	req.BaseURL = s.URL() + "/index.php/"
	tok, err := c.Token(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	result, err := c.Verify(context.Background(), VerifyRequest{Site: req.Site, Authorization: BearerAuthorization(tok.AccessToken)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(result.MauticVersion).To(Equal(mautictest.DefaultMauticVersion))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		setup         func(s *mautictest.Server, token string) VerifyRequest
		version       string
		status        int
		errType       string
		message       string
		unexpected    bool
		wantClass     Class
		secretsInside []string
	}{
		{
			name: "bearer",
			setup: func(s *mautictest.Server, token string) VerifyRequest {
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization(token)}
			},
			version: "6.0.1",
		},
		{
			name: "basic enabled",
			setup: func(s *mautictest.Server, _ string) VerifyRequest {
				s.AddUser("api", "pa55word")
				s.SetBasicAuthEnabled(true)
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Path: "/api/users/self", Authorization: BasicAuthorization("api", "pa55word")}
			},
			version: "6.0.1",
		},
		{
			name: "basic disabled",
			setup: func(s *mautictest.Server, _ string) VerifyRequest {
				s.AddUser("api", "pa55word")
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BasicAuthorization("api", "pa55word")}
			},
			status: 403, errType: "access_denied", message: mautictest.MessageBasicAuthDisabled, wantClass: ClassConfiguration,
		},
		{
			name: "basic, wrong password",
			setup: func(s *mautictest.Server, _ string) VerifyRequest {
				s.AddUser("api", "other")
				s.SetBasicAuthEnabled(true)
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BasicAuthorization("api", "pa55word")}
			},
			status: 401, errType: "access_denied", message: mautictest.MessageBasicAuthInvalid, wantClass: ClassConfiguration,
		},
		{
			name: "API disabled",
			setup: func(s *mautictest.Server, token string) VerifyRequest {
				s.SetAPIEnabled(false)
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization(token)}
			},
			status: 403, errType: "api_disabled", message: mautictest.MessageAPIDisabled, wantClass: ClassConfiguration,
		},
		{
			name: "invalid token",
			setup: func(s *mautictest.Server, _ string) VerifyRequest {
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization("forged-token")}
			},
			status: 401, errType: "invalid_grant", message: mautictest.MessageInvalidAccessToken, wantClass: ClassConfiguration,
		},
		{
			name: "lower-case bearer",
			setup: func(s *mautictest.Server, token string) VerifyRequest {
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: "bearer " + token}
			},
			status: 401, errType: "access_denied", message: mautictest.MessageAccessDenied, wantClass: ClassConfiguration,
		},
		{
			name: "path without /api redirects to the login page (a wrong path: configuration)",
			setup: func(s *mautictest.Server, token string) VerifyRequest {
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Path: "users/self", Authorization: BearerAuthorization(token)}
			},
			status: 302, unexpected: true, wantClass: ClassConfiguration,
		},
		{
			name: "HTML answer",
			setup: func(s *mautictest.Server, token string) VerifyRequest {
				s.InjectFault(mautictest.FaultHTML, 1)
				return VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization(token)}
			},
			status: 200, unexpected: true, wantClass: ClassTransient,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := mautictest.NewServerFor(t)
			s.SetMauticVersion("6.0.1")
			c := New(fastOptions())
			tok, err := c.Token(context.Background(), ccRequest(s, s.NewClient("crm", true)))
			g.Expect(err).NotTo(HaveOccurred())
			req := tc.setup(s, tok.AccessToken)
			result, err := c.Verify(context.Background(), req)
			if tc.status == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(result.MauticVersion).To(Equal(tc.version))
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(Classify(err)).To(Equal(tc.wantClass))
			expectNoSecrets(g, err, tok.AccessToken, "pa55word", strings.TrimPrefix(req.Authorization, "Basic "))
			if tc.unexpected {
				expectUnexpected(tc.status, "")(g, err)
				return
			}
			var mauticErr *Error
			g.Expect(errors.As(err, &mauticErr)).To(BeTrue(), "%T %v", err, err)
			g.Expect(*mauticErr).To(Equal(Error{Op: OpVerify, StatusCode: tc.status, Type: tc.errType, Code: tc.status, Message: tc.message}))
		})
	}
}

func TestVerifyRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	_, err := New(fastOptions()).Verify(context.Background(), VerifyRequest{
		Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Path: "/s/dashboard", Authorization: BearerAuthorization("t"),
	})
	g.Expect(err).To(MatchError(ContainSubstring(`HTTP 302 with content type "text/html; charset=utf-8", a redirect to "` + s.URL() + `/s/login"`)))
	g.Expect(s.APIRequests()).To(BeZero())
}

func TestVerifyNeedsAuthorization(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	_, err := New(fastOptions()).Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: "https://m.example.com"}})
	g.Expect(Classify(err)).To(Equal(ClassConfiguration))
}

func TestCACert(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewTLSServer()
	defer s.Close()
	app := s.NewClient("crm", true)
	c := New(fastOptions())

	req := ccRequest(s, app)
	_, err := c.Token(context.Background(), req)
	g.Expect(err).To(HaveOccurred())
	g.Expect(IsCertificateError(err)).To(BeTrue(), "%v", err)
	g.Expect(Classify(err)).To(Equal(ClassConfiguration))
	g.Expect(err.Error()).To(ContainSubstring("private CA"))
	g.Expect(s.TokenRequests()).To(BeZero())

	req.CACert = s.CACertPEM()
	tok, err := c.Token(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	result, err := c.Verify(context.Background(), VerifyRequest{Site: req.Site, Authorization: BearerAuthorization(tok.AccessToken)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(result.MauticVersion).To(Equal(mautictest.DefaultMauticVersion))
}

func TestObserve(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	app := s.NewClient("crm", true)
	type observation struct {
		op     Op
		grant  Grant
		status int
	}
	var mu sync.Mutex
	var seen []observation
	opts := fastOptions()
	opts.Clock = clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	opts.Observe = func(op Op, grant Grant, status int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, observation{op, grant, status})
		g.Expect(d).To(BeZero()) // the fake clock stands still
	}
	c := New(opts)
	tok, err := c.Token(context.Background(), ccRequest(s, app))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization(tok.AccessToken)})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.Token(context.Background(), TokenRequest{Site: Site{BaseURL: "http://127.0.0.1:1", AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s"})
	g.Expect(err).To(HaveOccurred())
	g.Expect(Classify(err)).To(Equal(ClassTransient))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(seen).To(Equal([]observation{
		{OpToken, GrantClientCredentials, 200},
		{OpVerify, "", 200},
		{OpToken, GrantClientCredentials, 0},
	}))
}

func TestConcurrentTokens(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	tlsServer := mautictest.NewTLSServer()
	defer tlsServer.Close()
	app, tlsApp := s.NewClient("crm", true), tlsServer.NewClient("crm", true)
	opts := fastOptions()
	opts.MaxConcurrentPerHost = -1
	c := New(opts)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := c.Token(context.Background(), ccRequest(s, app))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			req := ccRequest(tlsServer, tlsApp)
			req.CACert = tlsServer.CACertPEM()
			_, err := c.Token(context.Background(), req)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(s.IssuedAccessTokens()).To(Equal(20))
	g.Expect(tlsServer.IssuedAccessTokens()).To(Equal(20))
}

func TestVerifyMauticVersion(t *testing.T) {
	t.Parallel()
	const token = "AbCdEf123456"
	cases := []struct {
		name   string
		header string // "" sends none
		want   string
	}{
		{name: "plain", header: "5.2.1", want: "5.2.1"},
		{name: "pre-release and build", header: "6.0.0-beta1+build_5", want: "6.0.0-beta1+build_5"},
		{name: "longest", header: "5" + strings.Repeat(".0", 31) + "1", want: "5" + strings.Repeat(".0", 31) + "1"},
		{name: "too long", header: "5" + strings.Repeat(".0", 32), want: ""},
		{name: "absent", want: ""},
		{name: "starts with a dot", header: ".5.2", want: ""},
		{name: "space", header: "5.2.1 (Ubuntu)", want: ""},
		{name: "markup", header: "<b>5</b>", want: ""},
		{name: "200 KB", header: strings.Repeat("5", 200<<10), want: ""},
		{name: "200 KB with terminal control characters", header: "5.2.1\x9b[31m\t" + strings.Repeat("A", 200<<10) + "\t\u009b[0m", want: ""},
		{name: "the request's token", header: token, want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, func(w http.ResponseWriter, _ *http.Request) {
				header := ""
				if tc.header != "" {
					header = "Mautic-Version: " + tc.header + "\r\n"
				}
				writeRaw(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"+header+"\r\n{}")
			})
			result, err := New(fastOptions()).Verify(context.Background(), VerifyRequest{
				Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Authorization: BearerAuthorization(token),
			})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(result.MauticVersion).To(Equal(tc.want))
		})
	}
	t.Run("ASCII control characters", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		for _, header := range []string{"5.2.1\x1b[31m", "5.2.1\x00", "5\n.2", "5.2.1\x7f", "5.2.1é"} {
			g.Expect(mauticVersion(header, nil)).To(BeEmpty(), "%q", header)
		}
		g.Expect(mauticVersion("5.2.1", newRedactor(token))).To(Equal("5.2.1"))
	})
	t.Run("a header net/http refuses gives a bounded one-line error", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		srv := rawServer(t, func(w http.ResponseWriter, _ *http.Request) {
			writeRaw(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMautic-Version: 5\x1b[31m"+strings.Repeat("A", 200<<10)+"\x07\r\n\r\n{}")
		})
		_, err := New(fastOptions()).Verify(context.Background(), VerifyRequest{
			Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Authorization: BearerAuthorization(token),
		})
		g.Expect(err).To(HaveOccurred())
		g.Expect(len(err.Error())).To(BeNumerically("<", 1024))
		g.Expect(err.Error()).NotTo(ContainSubstring("\x1b"))
		g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
		g.Expect(Classify(err)).To(Equal(ClassTransient))
	})
}

func TestPlainHTTPNeedsAllowInsecureHTTP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		baseURL func(srv string) string
		allow   bool
		refused bool
	}{
		{name: "http refused", baseURL: func(srv string) string { return srv }, refused: true},
		{name: "HTTP in capitals refused", baseURL: func(srv string) string { return strings.Replace(srv, "http://", "HTTP://", 1) }, refused: true},
		{name: "http allowed", baseURL: func(srv string) string { return srv }, allow: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := mautictest.NewServerFor(t)
			app := s.NewClient("crm", true)
			site := Site{BaseURL: tc.baseURL(s.URL()), AllowInsecureHTTP: tc.allow}
			c := New(fastOptions())
			tok, tokenErr := c.Token(context.Background(), TokenRequest{Site: site, Grant: GrantClientCredentials, ClientID: app.ID, ClientSecret: app.Secret})
			_, verifyErr := c.Verify(context.Background(), VerifyRequest{Site: site, Authorization: BearerAuthorization("t0ken")})
			if !tc.refused {
				g.Expect(tokenErr).NotTo(HaveOccurred())
				_, verifyErr = c.Verify(context.Background(), VerifyRequest{Site: site, Authorization: BearerAuthorization(tok.AccessToken)})
				g.Expect(verifyErr).NotTo(HaveOccurred())
				return
			}
			for _, err := range []error{tokenErr, verifyErr} {
				var configErr *ConfigError
				g.Expect(errors.As(err, &configErr)).To(BeTrue(), "%T %v", err, err)
				g.Expect(configErr.Field).To(Equal("url"))
				g.Expect(configErr.Message).To(ContainSubstring("use an https:// URL, or set spec.allowInsecureHTTP: true"))
				g.Expect(Classify(err)).To(Equal(ClassConfiguration))
				g.Expect(IsAmbiguous(err)).To(BeFalse())
			}
			g.Expect(s.TokenRequests()).To(BeZero())
			g.Expect(s.APIRequests()).To(BeZero())
		})
	}
}
