package mautic

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// refreshRequest is a refresh_token request for app on s.
func refreshRequest(s *mautictest.Server, app mautictest.ClientApp, refreshToken string) TokenRequest {
	return TokenRequest{
		Site:         Site{BaseURL: s.URL(), AllowInsecureHTTP: true},
		Grant:        GrantRefreshToken,
		ClientID:     app.ID,
		ClientSecret: app.Secret,
		RefreshToken: refreshToken,
	}
}

// answerWith returns a handler that answers status with contentType and body.
func answerWith(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// cutShort returns a handler that announces a longer body than it writes, then drops the connection.
func cutShort(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

func TestTokenForm(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		req  TokenRequest
		want url.Values
	}{
		{
			name: "client_credentials with scopes",
			req:  TokenRequest{Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret", Scopes: []string{"contacts", "email"}},
			want: url.Values{"grant_type": {"client_credentials"}, "client_id": {"1_a"}, "client_secret": {"s3cret"}, "scope": {"contacts email"}},
		},
		{
			name: "refresh_token sends no scope",
			req:  TokenRequest{Grant: GrantRefreshToken, ClientID: "1_a", ClientSecret: "s3cret", RefreshToken: "rt", Scopes: []string{"contacts"}},
			want: url.Values{"grant_type": {"refresh_token"}, "client_id": {"1_a"}, "client_secret": {"s3cret"}, "refresh_token": {"rt"}},
		},
		{
			name: "refresh_token of a public client",
			req:  TokenRequest{Grant: GrantRefreshToken, ClientID: "1_a", RefreshToken: "rt"},
			want: url.Values{"grant_type": {"refresh_token"}, "client_id": {"1_a"}, "refresh_token": {"rt"}},
		},
		{
			name: "password",
			req:  TokenRequest{Grant: GrantPassword, ClientID: "1_a", ClientSecret: "s3cret", Username: "u", Password: "p w", Scopes: []string{"a"}},
			want: url.Values{"grant_type": {"password"}, "client_id": {"1_a"}, "client_secret": {"s3cret"}, "username": {"u"},
				"password": {"p w"}, "scope": {"a"}},
		},
		{
			name: "authorization_code",
			req: TokenRequest{Grant: GrantAuthorizationCode, ClientID: "1_a", ClientSecret: "s3cret", Code: "c&d",
				RedirectURI: "http://127.0.0.1:8085/callback"},
			want: url.Values{"grant_type": {"authorization_code"}, "client_id": {"1_a"}, "client_secret": {"s3cret"}, "code": {"c&d"},
				"redirect_uri": {"http://127.0.0.1:8085/callback"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv, last := recordingServer(t, answerWith(http.StatusOK, "application/json", `{"access_token":"at","token_type":"bearer"}`))
			tc.req.BaseURL = srv.URL + "/index.php"
			tc.req.AllowInsecureHTTP = true
			_, err := New(fastOptions()).Token(context.Background(), tc.req)
			g.Expect(err).NotTo(HaveOccurred())
			seen := last()
			g.Expect(seen.Method).To(Equal(http.MethodPost))
			g.Expect(seen.URL.Path).To(Equal("/index.php/oauth/v2/token"))
			g.Expect(seen.URL.RawQuery).To(BeEmpty())
			g.Expect(seen.Header.Get("Content-Type")).To(Equal("application/x-www-form-urlencoded"))
			g.Expect(seen.Header.Get("Accept")).To(Equal("application/json"))
			g.Expect(seen.Header.Values("Authorization")).To(BeEmpty())
			g.Expect(seen.PostForm).To(Equal(tc.want))
		})
	}
}

func TestTokenLenientAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		grant       Grant
		contentType string
		body        string
		want        Token
	}{
		{
			name: "fractional expires_in", grant: GrantClientCredentials, contentType: "application/json",
			body: `{"access_token":"at","expires_in":1.5,"token_type":"bearer"}`,
			want: Token{AccessToken: "at", TokenType: "bearer", ExpiresIn: 1500 * time.Millisecond},
		},
		{
			name: "fractional expires_in in a string", grant: GrantClientCredentials, contentType: "application/json",
			body: `{"access_token":"at","expires_in":" 3599.25 ","token_type":"Bearer"}`,
			want: Token{AccessToken: "at", TokenType: "bearer", ExpiresIn: 3599250 * time.Millisecond},
		},
		{
			name: "exponent", grant: GrantClientCredentials, contentType: "application/json",
			body: `{"access_token":"at","expires_in":3.6e3}`,
			want: Token{AccessToken: "at", ExpiresIn: time.Hour},
		},
		{
			name: "no expires_in, null token_type", grant: GrantClientCredentials, contentType: "application/json",
			body: `{"access_token":"at","token_type":null,"expires_in":null}`,
			want: Token{AccessToken: "at"},
		},
		{
			name: "huge expires_in is capped", grant: GrantClientCredentials, contentType: "application/json",
			body: `{"access_token":"at","expires_in":1e300}`,
			want: Token{AccessToken: "at", ExpiresIn: maxExpiresInSeconds * time.Second},
		},
		{
			name: "negative expires_in", grant: GrantClientCredentials, contentType: "application/json",
			body: `{"access_token":"at","expires_in":-5}`,
			want: Token{AccessToken: "at"},
		},
		{
			name: "rotated refresh token", grant: GrantRefreshToken, contentType: "application/json; charset=utf-8",
			body: `{"access_token":"at","expires_in":3600,"token_type":"bearer","scope":null,"refresh_token":"rt-new"}`,
			want: Token{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt-new", ExpiresIn: time.Hour},
		},
		{
			name: "server that does not rotate", grant: GrantRefreshToken, contentType: "application/json",
			body: `{"access_token":"at","expires_in":3600,"token_type":"bearer"}`,
			want: Token{AccessToken: "at", TokenType: "bearer", RefreshToken: "rt-presented", ExpiresIn: time.Hour},
		},
		{
			name: "null refresh token", grant: GrantRefreshToken, contentType: "application/json",
			body: `{"access_token":"at","refresh_token":null}`,
			want: Token{AccessToken: "at", RefreshToken: "rt-presented"},
		},
		{
			name: "+json media type, extra fields", grant: GrantAuthorizationCode, contentType: "application/vnd.api+json",
			body: `{"access_token":"at","refresh_token":"rt-new","id_token":{"x":1},"error":null}`,
			want: Token{AccessToken: "at", RefreshToken: "rt-new"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, answerWith(http.StatusOK, tc.contentType, tc.body))
			req := TokenRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: tc.grant, ClientID: "1_a", ClientSecret: "s3cret",
				RefreshToken: "rt-presented", Code: "code", RedirectURI: "http://127.0.0.1:8085/callback"}
			tok, err := New(fastOptions()).Token(context.Background(), req)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(*tok).To(Equal(tc.want))
		})
	}
}

func TestTokenUnusableRefreshAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		handler   http.HandlerFunc
		detail    string
		recovered string
	}{
		{
			name:    "JSON as text/plain",
			handler: answerWith(200, "text/plain", `{"access_token":"at","expires_in":3600,"refresh_token":"rt-new"}`),
			detail:  "not JSON", recovered: "rt-new",
		},
		{
			name:    "JSON in an HTML page",
			handler: answerWith(200, "text/html", `<html><pre>{"access_token":"at", "refresh_token" : "rt-new"}</pre></html>`),
			detail:  "not JSON", recovered: "rt-new",
		},
		{
			name:    "HTML login page",
			handler: answerWith(200, "text/html; charset=UTF-8", `<html><form action="/s/login_check"></form></html>`),
			detail:  "not JSON",
		},
		{
			name:    "form-encoded",
			handler: answerWith(200, "application/x-www-form-urlencoded", "access_token=at&refresh_token=rt%2Fnew&expires_in=3600"),
			detail:  "not JSON", recovered: "rt/new",
		},
		{
			name:    "form-encoded without a refresh token",
			handler: answerWith(200, "text/plain", "access_token=at&token_type=bearer"),
			detail:  "not JSON",
		},
		{
			name:    "no content type",
			handler: answerWith(200, "", `{"access_token":"at","refresh_token":"rt-new"}`),
			detail:  "not JSON", recovered: "rt-new",
		},
		{
			name:    "oversized body",
			handler: answerWith(200, "application/json", `{"refresh_token":"rt-new","access_token":"`+strings.Repeat("a", 4096)+`"}`),
			detail:  "larger than 1024 bytes", recovered: "rt-new",
		},
		{
			name:    "oversized body, refresh token past the limit",
			handler: answerWith(200, "application/json", `{"access_token":"`+strings.Repeat("a", 4096)+`","refresh_token":"rt-new"}`),
			detail:  "larger than 1024 bytes",
		},
		{
			name:    "truncated JSON",
			handler: answerWith(200, "application/json", `{"access_token":"at","refresh_token":"rt\/new\u0041","expires_in":36`),
			detail:  "malformed JSON", recovered: "rt/newA",
		},
		{
			name:    "truncated inside the refresh token",
			handler: answerWith(200, "application/json", `{"access_token":"at","refresh_token":"rt-ne`),
			detail:  "malformed JSON",
		},
		{
			name:    "empty body",
			handler: answerWith(200, "application/json", ``),
			detail:  "malformed JSON",
		},
		{
			name:    "array",
			handler: answerWith(200, "application/json", `[{"access_token":"at","refresh_token":"rt-new"}]`),
			detail:  "not an object",
		},
		{
			name:    "null",
			handler: answerWith(200, "application/json", `null`),
			detail:  "not an object",
		},
		{
			name:    "no access_token",
			handler: answerWith(201, "application/json", `{"token_type":"bearer","refresh_token":"rt-new"}`),
			detail:  "no access_token", recovered: "rt-new",
		},
		{
			name:    "unexpected object",
			handler: answerWith(200, "application/json", `{"unexpected":true}`),
			detail:  "no access_token",
		},
		{
			name:    "expires_in not a number",
			handler: answerWith(200, "application/json", `{"access_token":"at","expires_in":"soon","refresh_token":"rt-new"}`),
			detail:  "expires_in", recovered: "rt-new",
		},
		{
			name:    "refresh_token not a string",
			handler: answerWith(200, "application/json", `{"access_token":"at","refresh_token":{"value":"rt-new"}}`),
			detail:  "refresh_token that is not a string",
		},
		{
			name:    "implausible refresh token",
			handler: answerWith(200, "application/json", `{"refresh_token":"rt\nnew"}`),
			detail:  "no access_token",
		},
		{
			name:    "body cut short after the refresh token",
			handler: cutShort(`{"access_token":"at","refresh_token":"rt-new","expires_in":3600`),
			detail:  "cut short", recovered: "rt-new",
		},
		{
			name:    "body cut short before the refresh token",
			handler: cutShort(`{"access_token":"at","refr`),
			detail:  "cut short",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, tc.handler)
			opts := fastOptions()
			opts.MaxBodyBytes = 1024
			_, err := New(opts).Token(context.Background(), TokenRequest{
				Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantRefreshToken, ClientID: "1_a", ClientSecret: "s3cret", RefreshToken: "rt-presented",
			})
			var unusable *UnusableAnswerError
			g.Expect(errors.As(err, &unusable)).To(BeTrue(), "%T %v", err, err)
			g.Expect(unusable.RefreshToken).To(Equal(tc.recovered))
			g.Expect(unusable.MayHaveRotated()).To(BeTrue())
			g.Expect(unusable.Grant).To(Equal(GrantRefreshToken))
			var unexpected *UnexpectedResponseError
			g.Expect(errors.As(err, &unexpected)).To(BeTrue())
			g.Expect(unexpected.Op).To(Equal(OpToken))
			g.Expect(unexpected.Detail).To(ContainSubstring(tc.detail))
			g.Expect(Classify(err)).To(Equal(ClassTransient))
			g.Expect(IsAmbiguous(err)).To(Equal(tc.recovered == ""))
			expectNoSecrets(g, err, "s3cret", "rt-presented", "rt-new", "rt/new", "rt%2Fnew")
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
			if tc.recovered != "" {
				g.Expect(err.Error()).To(HaveSuffix("; Mautic may have rotated the refresh token: the new one was recovered from the answer"))
			} else {
				g.Expect(err.Error()).To(HaveSuffix("; Mautic may have rotated the refresh token and no new one could be read from the answer"))
			}
		})
	}
}

// TestTokenUnusableAnswersOfOtherGrants checks that only a 2xx answer to a refresh_token grant is
// an *UnusableAnswerError: other grants and other statuses keep *UnexpectedResponseError.
func TestTokenUnusableAnswersOfOtherGrants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		grant   Grant
		handler http.HandlerFunc
		status  int
	}{
		{"client_credentials", GrantClientCredentials, answerWith(200, "text/plain", `{"access_token":"at","refresh_token":"rt-new"}`), 200},
		{"authorization_code", GrantAuthorizationCode, answerWith(200, "application/json", `{"refresh_token":"rt-new"}`), 200},
		{"password", GrantPassword, answerWith(200, "application/json", `{"access_token":"at","expires_in":"soon"}`), 200},
		{"refresh_token, proxy error page", GrantRefreshToken, answerWith(502, "text/html", `<html>Bad Gateway</html>`), 502},
		{"refresh_token, malformed error", GrantRefreshToken, answerWith(400, "application/json", `{"errors":[`), 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, tc.handler)
			_, err := New(fastOptions()).Token(context.Background(), TokenRequest{
				Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: tc.grant, ClientID: "1_a", ClientSecret: "s3cret", RefreshToken: "rt-presented",
				Username: "u", Password: "p", Code: "c", RedirectURI: "http://127.0.0.1:8085/callback",
			})
			var unexpected *UnexpectedResponseError
			g.Expect(errors.As(err, &unexpected)).To(BeTrue(), "%T %v", err, err)
			g.Expect(unexpected.StatusCode).To(Equal(tc.status))
			var unusable *UnusableAnswerError
			g.Expect(errors.As(err, &unusable)).To(BeFalse())
			g.Expect(IsAmbiguous(err)).To(BeFalse())
			expectNoSecrets(g, err, "s3cret", "rt-presented", "rt-new")
		})
	}
}

func TestTokenBodyCutShortOfOtherGrants(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	srv := rawServer(t, cutShort(`{"access_token":"at","expires_in":3600`))
	_, err := New(fastOptions()).Token(context.Background(), TokenRequest{
		Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret",
	})
	g.Expect(err).To(MatchError(HavePrefix("Mautic token endpoint request to " + srv.URL + "/oauth/v2/token failed: reading the answer: ")))
	g.Expect(Classify(err)).To(Equal(ClassTransient))
	g.Expect(IsAmbiguous(err)).To(BeTrue())
	expectNoSecrets(g, err, "s3cret")
}

func TestTokenFractionalExpiresInFault(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s, app, c := refreshServer(t)
	s.InjectFault(mautictest.FaultFractionalExpiresIn, 1)
	tok, err := c.Token(context.Background(), refreshRequest(s, app, s.IssueRefreshToken(app.ID)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.ExpiresIn).To(Equal(time.Hour + 500*time.Millisecond))
	g.Expect(s.AccessTokenValid(tok.AccessToken)).To(BeTrue())
	next, err := c.Token(context.Background(), refreshRequest(s, app, tok.RefreshToken))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(next.ExpiresIn).To(Equal(time.Hour))
}

// refreshServer starts a test server, closed when the test ends, with an API client "cli" for the
// authorization-code and refresh-token grants (not client credentials), and returns a Mautic
// client with short timeouts.
func refreshServer(t *testing.T) (*mautictest.Server, mautictest.ClientApp, Client) {
	t.Helper()
	s := mautictest.NewServerFor(t)
	return s, s.NewClient("cli", false), New(fastOptions())
}

// faultyRefresh is a refresh of a seeded refresh token that a fault of the test server answered.
type faultyRefresh struct {
	server   *mautictest.Server
	app      mautictest.ClientApp
	client   Client
	seeded   string
	err      error
	unusable *UnusableAnswerError
}

// refreshWithFault starts a test server (closed when the test ends), seeds a refresh token and
// refreshes it once with fault injected; the answer must be unusable.
func refreshWithFault(t *testing.T, g Gomega, fault mautictest.Fault) faultyRefresh {
	t.Helper()
	s, app, c := refreshServer(t)
	f := faultyRefresh{server: s, app: app, client: c, seeded: s.IssueRefreshToken(app.ID)}
	s.InjectFault(fault, 1)
	_, f.err = f.client.Token(context.Background(), refreshRequest(s, app, f.seeded))
	g.Expect(errors.As(f.err, &f.unusable)).To(BeTrue(), "%T %v", f.err, f.err)
	return f
}

func TestTokenUnusableAnswerFaults(t *testing.T) {
	t.Parallel()
	t.Run("the rotated refresh token is recovered", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		f := refreshWithFault(t, g, mautictest.FaultUnusableAnswer)
		s, app, c, seeded, err, unusable := f.server, f.app, f.client, f.seeded, f.err, f.unusable
		g.Expect(unusable.MayHaveRotated()).To(BeTrue())
		g.Expect(unusable.StatusCode).To(Equal(http.StatusOK))
		g.Expect(unusable.ContentType).To(HavePrefix("text/plain"))
		recovered := unusable.RefreshToken
		g.Expect(recovered).NotTo(BeEmpty())
		g.Expect(recovered).NotTo(Equal(seeded), "the server rotated the refresh token")
		g.Expect(IsAmbiguous(err)).To(BeFalse())
		g.Expect(Classify(err)).To(Equal(ClassTransient))
		expectNoSecrets(g, err, seeded, recovered, app.Secret)

		tok, err := c.Token(context.Background(), refreshRequest(s, app, recovered))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.AccessTokenValid(tok.AccessToken)).To(BeTrue())
		g.Expect(s.ReusedRefreshTokens()).To(BeZero())
		g.Expect(s.RefreshTokensIssued()).To(Equal(2))
	})
	t.Run("the rotated refresh token is lost", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		f := refreshWithFault(t, g, mautictest.FaultUnusableAnswerNoToken)
		s, app, c, seeded, err, unusable := f.server, f.app, f.client, f.seeded, f.err, f.unusable
		g.Expect(unusable.RefreshToken).To(BeEmpty())
		g.Expect(unusable.Detail).To(Equal("no access_token"))
		g.Expect(unusable.MayHaveRotated()).To(BeTrue())
		g.Expect(IsAmbiguous(err)).To(BeTrue())
		g.Expect(Classify(err)).To(Equal(ClassTransient))

		_, err = c.Token(context.Background(), refreshRequest(s, app, seeded))
		g.Expect(Classify(err)).To(Equal(ClassReauthorization))
		g.Expect(s.ReusedRefreshTokens()).To(Equal(1))
	})
}

func TestTokenAmbiguousFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault   mautictest.Fault
		rotates bool
	}{
		{mautictest.FaultDropAfterRead, true},
		{mautictest.FaultSlowThenAnswer, true},
		// The client cannot tell FaultSlow from FaultSlowThenAnswer: both are ambiguous to it.
		{mautictest.FaultSlow, false},
	}
	for _, tc := range cases {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := mautictest.NewServerFor(t)
			s.SetSlowDelay(time.Hour)
			app := s.NewClient("cli", false)
			opts := fastOptions()
			opts.Timeout = 200 * time.Millisecond
			c := New(opts)
			seeded := s.IssueRefreshToken(app.ID)
			s.InjectFault(tc.fault, 1)
			_, err := c.Token(context.Background(), refreshRequest(s, app, seeded))
			g.Expect(err).To(HaveOccurred())
			g.Expect(IsAmbiguous(err)).To(BeTrue(), "%v", err)
			g.Expect(Classify(err)).To(Equal(ClassTransient))
			expectNoSecrets(g, err, seeded, app.Secret)

			if tc.rotates {
				g.Eventually(s.RefreshTokensIssued).Should(Equal(1))
			}
			_, err = c.Token(context.Background(), refreshRequest(s, app, seeded))
			if !tc.rotates {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var mauticErr *Error
			g.Expect(errors.As(err, &mauticErr)).To(BeTrue(), "%v", err)
			g.Expect(mauticErr.Type).To(Equal("invalid_grant"))
			g.Expect(Classify(err)).To(Equal(ClassReauthorization))
			g.Expect(s.ReusedRefreshTokens()).To(Equal(1))
			g.Expect(s.RefreshTokensIssued()).To(Equal(1))
		})
	}
}

func TestRecoverRefreshToken(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxRefreshTokenBytes)
	cases := []struct {
		name string
		body string
		want string
	}{
		{"JSON object", `{"refresh_token":"rt"}`, "rt"},
		{"JSON object, escapes", `{"refresh_token":"a\/b\u002bc"}`, "a/b+c"},
		{"JSON object, space", `{"refresh_token":"a\/b\u0020c"}`, ""},
		{"JSON object, padding", `{"refresh_token":"YWJj=="}`, "YWJj=="},
		{"JSON object, padding inside", `{"refresh_token":"YW=Jj"}`, ""},
		{"JSON object, nested only", `{"data":{"refresh_token":"rt"}}`, ""},
		{"JSON object, empty", `{"refresh_token":""}`, ""},
		{"JSON object, number", `{"refresh_token":12}`, ""},
		{"JSON object, non-ASCII", `{"refresh_token":"rté"}`, ""},
		{"JSON array", `[{"refresh_token":"rt"}]`, ""},
		{"JSON string", `"refresh_token=rt"`, ""},
		{"form", `access_token=a&refresh_token=r%2Bt`, "r+t"},
		{"form with a bad pair", `a=%zz&refresh_token=rt`, "rt"},
		{"form, leading space", " \nrefresh_token=rt", "rt"},
		{"truncated JSON", `{"access_token":"a","refresh_token":"rt","expires_in":3`, "rt"},
		{"truncated JSON, spaces", "{\"refresh_token\" :\n \"rt\"", "rt"},
		{"truncated JSON, first plausible", `{"refresh_token":"bad\u0000", "refresh_token":"rt"`, "rt"},
		{"truncated JSON, bad escape skipped", `{"refresh_token":"\x", "refresh_token":"rt"`, "rt"},
		{"truncated in the token", `{"refresh_token":"r`, ""},
		{"truncated in an escape", `{"refresh_token":"r\`, ""},
		{"HTML with a query-string link", `<a href="/x?y=1&refresh_token=rt">`, ""},
		{"longest plausible", `{"refresh_token":"` + long + `"}`, long},
		{"too long", `{"refresh_token":"` + long + `x"}`, ""},
		{"empty", ``, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(recoverRefreshToken([]byte(tc.body))).To(Equal(tc.want))
		})
	}
}

func FuzzRecoverRefreshToken(f *testing.F) {
	for _, seed := range []string{
		`{"refresh_token":"rt"}`, `{"refresh_token":"rt`, `refresh_token=rt`, `<p>"refresh_token":"rt"</p>`,
		`{"refresh_token":"\ud800"`, `{"refresh_token":"\u0000"}`, `"refresh_token":""`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		token := recoverRefreshToken(body)
		if token != "" && plausibleToken(token) != token {
			t.Fatalf("recovered an implausible token %q from %q", token, body)
		}
		if token != "" && !strings.Contains(string(body), "refresh_token") {
			t.Fatalf("recovered %q from a body without refresh_token: %q", token, body)
		}
	})
}
