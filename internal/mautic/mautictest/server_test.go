package mautictest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// answer is a raw HTTP answer, decoded when it is JSON.
type answer struct {
	status int
	header http.Header
	raw    string
	json   map[string]any
}

// firstError returns errors[0] of a Mautic error body.
func (a answer) firstError() map[string]any {
	list, _ := a.json["errors"].([]any)
	if len(list) == 0 {
		return nil
	}
	entry, _ := list[0].(map[string]any)
	return entry
}

// noRedirects is an HTTP client that shows redirects instead of following them.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

// freshConnections is an HTTP client that opens a connection for every request.
var freshConnections = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// do sends req and reads the answer.
func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(body, &a.json)
	}
	return a
}

// formRequest builds a form POST to target.
func formRequest(t *testing.T, target string, form url.Values) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// postForm posts form to the token endpoint path of s, with optional header key/value pairs.
func postForm(t *testing.T, target string, form url.Values, header ...string) answer {
	t.Helper()
	req := formRequest(t, target, form)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

// get sends a GET with optional header key/value pairs.
func get(t *testing.T, target string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func clientCredentialsForm(app mautictest.ClientApp) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {app.Secret}}
}

// tokenCaseSetup builds what a token-error case sends, from the test server, a client allowed the
// client-credentials grant and one that is not: the form, and header name-value pairs.
type tokenCaseSetup func(s *mautictest.Server, app, noCC mautictest.ClientApp) (url.Values, []string)

// formOf is the setup of a case that sends a form built from the allowed client alone.
func formOf(form func(app mautictest.ClientApp) url.Values) tokenCaseSetup {
	return func(_ *mautictest.Server, app, _ mautictest.ClientApp) (url.Values, []string) { return form(app), nil }
}

// edited returns form with each key-value pair of pairs set, or the key removed where the value is "".
func edited(form url.Values, pairs ...string) url.Values {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			form.Del(pairs[i])
		} else {
			form.Set(pairs[i], pairs[i+1])
		}
	}
	return form
}

func TestNewClientID(t *testing.T) {
	g, s := parallelServer(t)
	first, second := s.NewClient("one", true), s.NewClient("two", false)
	g.Expect(first.ID).To(MatchRegexp(`^1_[0-9a-z]{20,}$`))
	g.Expect(second.ID).To(MatchRegexp(`^2_[0-9a-z]{20,}$`))
	g.Expect(first.Secret).To(MatchRegexp(`^[0-9a-z]{40,}$`))
	g.Expect(first.Secret).NotTo(Equal(second.Secret))
}

func TestTokenClientCredentialsSuccess(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/oauth/v2/token", "/index.php/oauth/v2/token"} {
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			t.Run(method+path, func(t *testing.T) {
				g, s := parallelServer(t)
				app := s.NewClient("crm", true)
				var a answer
				if method == http.MethodPost {
					a = postForm(t, s.URL()+path, clientCredentialsForm(app))
				} else {
					a = get(t, s.URL()+path+"?"+clientCredentialsForm(app).Encode())
				}
				g.Expect(a.status).To(Equal(http.StatusOK), a.raw)
				g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
				g.Expect(a.header.Get("Cache-Control")).To(Equal("no-store"))
				g.Expect(a.raw).To(MatchRegexp(`^\{"access_token":"[0-9a-z]+","expires_in":3600,"token_type":"bearer","scope":null\}$`))
				g.Expect(a.json).NotTo(HaveKey("refresh_token"))
				g.Expect(s.AccessTokenValid(a.json["access_token"].(string))).To(BeTrue())
				g.Expect(s.IssuedAccessTokens()).To(Equal(1))
			})
		}
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	cc := clientCredentialsForm
	cases := []struct {
		name    string
		setup   tokenCaseSetup
		status  int
		errType string
		message string
	}{
		{name: "missing grant_type", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(cc(app), "grant_type", "") }),
			status: 400, errType: "invalid_request", message: mautictest.MessageInvalidGrantType},
		{name: "bad grant_type", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(cc(app), "grant_type", "magic") }),
			status: 400, errType: "invalid_request", message: mautictest.MessageInvalidGrantType},
		{name: "no client_id", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(cc(app), "client_id", "") }),
			status: 400, errType: "invalid_client", message: mautictest.MessageNoClientID},
		{name: "wrong secret", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(cc(app), "client_secret", "nope") }),
			status: 400, errType: "invalid_client", message: mautictest.MessageInvalidClient},
		{name: "missing secret", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(cc(app), "client_secret", "") }),
			status: 400, errType: "invalid_client", message: mautictest.MessageInvalidClient},
		{name: "unknown client", setup: formOf(func(app mautictest.ClientApp) url.Values {
			return edited(cc(app), "client_id", "9_x", "client_secret", "y")
		}), status: 400, errType: "invalid_client", message: mautictest.MessageInvalidClient},
		{name: "client_credentials not allowed for this client",
			setup:  func(_ *mautictest.Server, _, noCC mautictest.ClientApp) (url.Values, []string) { return cc(noCC), nil },
			status: 400, errType: "unauthorized_client", message: mautictest.MessageUnauthorizedClient},
		{name: "password never allowed", setup: formOf(func(app mautictest.ClientApp) url.Values {
			return edited(cc(app), "grant_type", "password", "username", "admin", "password", "pw")
		}), status: 400, errType: "unauthorized_client", message: mautictest.MessageUnauthorizedClient},
		{name: "unknown refresh token", setup: formOf(func(app mautictest.ClientApp) url.Values { return refreshForm(app, "nope") }),
			status: 400, errType: "invalid_grant", message: mautictest.MessageInvalidRefreshToken},
		{name: "refresh token of another client",
			setup: func(s *mautictest.Server, app, noCC mautictest.ClientApp) (url.Values, []string) {
				return refreshForm(app, s.IssueRefreshToken(noCC.ID)), nil
			},
			status: 400, errType: "invalid_grant", message: mautictest.MessageInvalidRefreshToken},
		{name: "missing refresh token", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(refreshForm(app, ""), "refresh_token", "") }),
			status: 400, errType: "invalid_request", message: mautictest.MessageNoRefreshToken},
		{name: "unknown authorization code", setup: formOf(func(app mautictest.ClientApp) url.Values {
			return edited(cc(app), "grant_type", "authorization_code", "code", "nope", "redirect_uri", "http://127.0.0.1:8085/callback")
		}), status: 400, errType: "invalid_grant", message: mautictest.MessageInvalidCode},
		{name: "scope requested", setup: formOf(func(app mautictest.ClientApp) url.Values { return edited(cc(app), "scope", "contacts") }),
			status: 400, errType: "invalid_scope", message: mautictest.MessageUnsupportedScope},
		{name: "basic header while basic auth is off",
			setup: func(*mautictest.Server, mautictest.ClientApp, mautictest.ClientApp) (url.Values, []string) {
				return url.Values{"grant_type": {"client_credentials"}}, []string{"Authorization", "Basic " + "MTpzZWNyZXQ="}
			},
			status: 403, errType: "access_denied", message: mautictest.MessageBasicAuthDisabled},
		{name: "API disabled",
			setup: func(s *mautictest.Server, app, _ mautictest.ClientApp) (url.Values, []string) {
				s.SetAPIEnabled(false)
				return cc(app), nil
			},
			status: 403, errType: "api_disabled", message: mautictest.MessageAPIDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, s := parallelServer(t)
			app, noCC := s.NewClient("crm", true), s.NewClient("browser", false)
			form, header := tc.setup(s, app, noCC)
			a := postToken(t, s, form, header...)
			g.Expect(a.status).To(Equal(tc.status), a.raw)
			g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
			g.Expect(a.header.Get("Mautic-Version")).To(BeEmpty())
			g.Expect(a.firstError()).To(Equal(map[string]any{
				"message": tc.message, "code": float64(tc.status), "type": tc.errType,
			}))
			g.Expect(s.IssuedAccessTokens()).To(BeZero())
		})
	}
}

func TestTokenBasicClientAuthWhenEnabled(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("crm", true)
	s.SetBasicAuthEnabled(true)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL()+"/oauth/v2/token",
		strings.NewReader("grant_type=client_credentials"))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(app.ID, app.Secret)
	a := do(t, req)
	g.Expect(a.status).To(Equal(http.StatusOK), a.raw)
	g.Expect(s.TokenRequestsByClient(app.ID)).To(Equal(1))
}

func TestRefreshTokenRotation(t *testing.T) {
	g, s := parallelServer(t)
	fakeClock := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.SetClock(fakeClock)
	app := s.NewClient("crm", false)
	refresh := func(token string) answer {
		return postToken(t, s, url.Values{
			"grant_type": {"refresh_token"}, "client_id": {app.ID}, "client_secret": {app.Secret}, "refresh_token": {token},
		})
	}

	seeded := s.IssueRefreshToken(app.ID)
	first := refresh(seeded)
	g.Expect(first.status).To(Equal(http.StatusOK), first.raw)
	g.Expect(first.raw).To(MatchRegexp(`^\{"access_token":"\w+","expires_in":3600,"token_type":"bearer","scope":null,"refresh_token":"\w+"\}$`))
	rotated := first.json["refresh_token"].(string)
	g.Expect(rotated).NotTo(Equal(seeded))

	reused := refresh(seeded)
	g.Expect(reused.status).To(Equal(http.StatusBadRequest))
	g.Expect(reused.firstError()).To(HaveKeyWithValue("type", "invalid_grant"))
	g.Expect(reused.firstError()).To(HaveKeyWithValue("message", mautictest.MessageInvalidRefreshToken))
	g.Expect(s.ReusedRefreshTokens()).To(Equal(1))

	// The new refresh token has a full new lifetime; earlier access tokens stay valid until they expire.
	fakeClock.SetTime(fakeClock.Now().Add(13 * 24 * time.Hour))
	second := refresh(rotated)
	g.Expect(second.status).To(Equal(http.StatusOK), second.raw)
	fakeClock.SetTime(fakeClock.Now().Add(13 * 24 * time.Hour))
	third := refresh(second.json["refresh_token"].(string))
	g.Expect(third.status).To(Equal(http.StatusOK), third.raw)
	g.Expect(s.AccessTokenValid(third.json["access_token"].(string))).To(BeTrue())
	g.Expect(s.AccessTokenValid(first.json["access_token"].(string))).To(BeFalse())

	fakeClock.SetTime(fakeClock.Now().Add(15 * 24 * time.Hour))
	expired := refresh(third.json["refresh_token"].(string))
	g.Expect(expired.status).To(Equal(http.StatusBadRequest))
	g.Expect(expired.firstError()).To(HaveKeyWithValue("message", mautictest.MessageExpiredRefreshToken))
	g.Expect(s.TokenRequestsByGrant("refresh_token")).To(Equal(5))

	s.RevokeRefreshTokens(app.ID)
	fresh := s.IssueRefreshToken(app.ID)
	s.RevokeRefreshTokens(app.ID)
	g.Expect(refresh(fresh).firstError()).To(HaveKeyWithValue("message", mautictest.MessageInvalidRefreshToken))
}

func TestAuthorizationCode(t *testing.T) {
	t.Parallel()
	const redirect = "http://127.0.0.1:8085/callback"
	exchange := func(t *testing.T, s *mautictest.Server, app mautictest.ClientApp, code, redirectURI string) answer {
		return postToken(t, s, url.Values{
			"grant_type": {"authorization_code"}, "client_id": {app.ID}, "client_secret": {app.Secret},
			"code": {code}, "redirect_uri": {redirectURI},
		})
	}
	t.Run("authorize, exchange once", func(t *testing.T) {
		g, s := parallelServer(t)
		app := mautictest.ClientApp{ID: "7_abc", Secret: "s3cret", Name: "cli", RedirectURIs: []string{redirect}}
		s.AddClient(app)

		authorize := get(t, s.URL()+"/oauth/v2/authorize?"+url.Values{
			"client_id": {app.ID}, "redirect_uri": {redirect}, "response_type": {"code"}, "state": {"xyz"},
		}.Encode())
		g.Expect(authorize.status).To(Equal(http.StatusFound))
		location, err := url.Parse(authorize.header.Get("Location"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(location.Host).To(Equal("127.0.0.1:8085"))
		g.Expect(location.Query().Get("state")).To(Equal("xyz"))
		code := location.Query().Get("code")
		g.Expect(code).NotTo(BeEmpty())

		mismatch := exchange(t, s, app, code, "http://127.0.0.1:9999/callback")
		g.Expect(mismatch.firstError()).To(HaveKeyWithValue("type", "redirect_uri_mismatch"))
		ok := exchange(t, s, app, code, redirect)
		g.Expect(ok.status).To(Equal(http.StatusOK), ok.raw)
		g.Expect(ok.json).To(HaveKey("refresh_token"))
		again := exchange(t, s, app, code, redirect)
		g.Expect(again.firstError()).To(HaveKeyWithValue("message", mautictest.MessageInvalidCode))
		g.Expect(s.AuthorizeRequests()).To(Equal(1))

		self := get(t, s.URL()+"/api/users/self", "Authorization", "Bearer "+ok.json["access_token"].(string))
		g.Expect(self.json).To(HaveKeyWithValue("username", mautictest.DefaultUsername))
	})
	t.Run("expired code", func(t *testing.T) {
		g, s := parallelServer(t)
		fakeClock := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		s.SetClock(fakeClock)
		app := s.NewClient("cli", false)
		code := s.IssueAuthorizationCode(app.ID, redirect)
		fakeClock.SetTime(fakeClock.Now().Add(31 * time.Second))
		g.Expect(exchange(t, s, app, code, redirect).firstError()).To(HaveKeyWithValue("message", mautictest.MessageExpiredCode))
		g.Expect(exchange(t, s, app, code, "").firstError()).To(HaveKeyWithValue("message", mautictest.MessageNoRedirectURI))
		g.Expect(exchange(t, s, app, "", redirect).firstError()).To(HaveKeyWithValue("message", mautictest.MessageNoCode))
	})
	t.Run("authorize errors", func(t *testing.T) {
		g, s := parallelServer(t)
		app := mautictest.ClientApp{ID: "7_abc", Secret: "s", RedirectURIs: []string{redirect}}
		s.AddClient(app)
		authorize := func(values url.Values) answer { return get(t, s.URL()+"/oauth/v2/authorize?"+values.Encode()) }
		g.Expect(authorize(url.Values{}).firstError()).To(HaveKeyWithValue("message", mautictest.MessageAuthorizeNoClientID))
		g.Expect(authorize(url.Values{"client_id": {"1_x"}}).firstError()).To(HaveKeyWithValue("type", "invalid_client"))
		loopback := authorize(url.Values{"client_id": {app.ID}, "redirect_uri": {"http://127.0.0.1:41234/callback"}, "response_type": {"code"}})
		g.Expect(loopback.status).To(Equal(http.StatusBadRequest))
		g.Expect(loopback.firstError()).To(HaveKeyWithValue("type", "redirect_uri_mismatch"))
		badType := authorize(url.Values{"client_id": {app.ID}, "redirect_uri": {redirect}, "response_type": {"token"}})
		g.Expect(badType.header.Get("Location")).To(ContainSubstring("error=unsupported_response_type"))

		s.SetAuthorizeDenied(true)
		denied := authorize(url.Values{"client_id": {app.ID}, "redirect_uri": {redirect}, "response_type": {"code"}})
		g.Expect(denied.status).To(Equal(http.StatusFound))
		g.Expect(denied.header.Get("Location")).To(BeEmpty())
	})
}

func TestUsersSelf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		setup      func(s *mautictest.Server, token string) (query string, header []string)
		status     int
		errType    any
		message    string
		wantUser   string
		wantHeader bool
	}{
		{
			name: "bearer",
			setup: func(_ *mautictest.Server, token string) (string, []string) {
				return "", []string{"Authorization", "Bearer " + token}
			},
			status: 200, wantUser: "crm [%s]", wantHeader: true,
		},
		{
			name:   "access_token query",
			setup:  func(_ *mautictest.Server, token string) (string, []string) { return "?access_token=" + token, nil },
			status: 200, wantUser: "crm [%s]", wantHeader: true,
		},
		{
			name: "both ways at once",
			setup: func(_ *mautictest.Server, token string) (string, []string) {
				return "?access_token=" + token, []string{"Authorization", "Bearer " + token}
			},
			status: 500, errType: nil, message: mautictest.MessageTwoTokenMethods,
		},
		{
			name: "lower-case bearer is no token",
			setup: func(_ *mautictest.Server, token string) (string, []string) {
				return "", []string{"Authorization", "bearer " + token}
			},
			status: 401, errType: "access_denied", message: mautictest.MessageAccessDenied,
		},
		{
			name:   "no token",
			setup:  func(*mautictest.Server, string) (string, []string) { return "", nil },
			status: 401, errType: "access_denied", message: mautictest.MessageAccessDenied,
		},
		{
			name: "invalid token",
			setup: func(*mautictest.Server, string) (string, []string) {
				return "", []string{"Authorization", "Bearer nope"}
			},
			status: 401, errType: "invalid_grant", message: mautictest.MessageInvalidAccessToken,
		},
		{
			name: "basic while disabled",
			setup: func(s *mautictest.Server, _ string) (string, []string) {
				s.AddUser("admin", "pw")
				return "", []string{"Authorization", "Basic YWRtaW46cHc="}
			},
			status: 403, errType: "access_denied", message: mautictest.MessageBasicAuthDisabled,
		},
		{
			name: "basic enabled and right",
			setup: func(s *mautictest.Server, _ string) (string, []string) {
				s.AddUser("admin", "pw")
				s.SetBasicAuthEnabled(true)
				return "", []string{"Authorization", "Basic YWRtaW46cHc="}
			},
			status: 200, wantUser: "admin", wantHeader: true,
		},
		{
			name: "basic enabled, wrong password",
			setup: func(s *mautictest.Server, _ string) (string, []string) {
				s.AddUser("admin", "other")
				s.SetBasicAuthEnabled(true)
				return "", []string{"Authorization", "Basic YWRtaW46cHc="}
			},
			status: 401, errType: "access_denied", message: mautictest.MessageBasicAuthInvalid,
		},
		{
			name: "API disabled",
			setup: func(s *mautictest.Server, token string) (string, []string) {
				s.SetAPIEnabled(false)
				return "", []string{"Authorization", "Bearer " + token}
			},
			status: 403, errType: "api_disabled", message: mautictest.MessageAPIDisabled,
		},
	}
	for _, tc := range cases {
		for _, prefix := range []string{"", "/index.php"} {
			t.Run(tc.name+prefix, func(t *testing.T) {
				g, s := parallelServer(t)
				s.SetMauticVersion("6.0.1")
				app := s.NewClient("crm", true)
				token := postToken(t, s, clientCredentialsForm(app)).json["access_token"].(string)
				query, header := tc.setup(s, token)
				a := get(t, s.URL()+prefix+"/api/users/self"+query, header...)
				g.Expect(a.status).To(Equal(tc.status), a.raw)
				g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
				if tc.wantHeader {
					g.Expect(a.header.Get("Mautic-Version")).To(Equal("6.0.1"))
				} else {
					g.Expect(a.header.Values("Mautic-Version")).To(BeEmpty())
				}
				if tc.wantUser != "" {
					want := tc.wantUser
					if strings.Contains(want, "%s") {
						want = strings.ReplaceAll(want, "%s", app.ID)
					}
					g.Expect(a.json).To(HaveKeyWithValue("username", want))
					return
				}
				g.Expect(a.firstError()).To(Equal(map[string]any{"message": tc.message, "code": float64(tc.status), "type": tc.errType}))
				g.Expect(s.APIRequests()).To(Equal(1))
			})
		}
	}
}

func TestExpiredAccessToken(t *testing.T) {
	g, s := parallelServer(t)
	fakeClock := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.SetClock(fakeClock)
	s.SetAccessTokenLifetime(10 * time.Minute)
	app := s.NewClient("crm", true)
	a := postToken(t, s, clientCredentialsForm(app))
	g.Expect(a.json).To(HaveKeyWithValue("expires_in", float64(600)))
	token := a.json["access_token"].(string)
	fakeClock.SetTime(fakeClock.Now().Add(10 * time.Minute))
	g.Expect(s.AccessTokenValid(token)).To(BeFalse())
	expired := get(t, s.URL()+"/api/users/self", "Authorization", "Bearer "+token)
	g.Expect(expired.status).To(Equal(http.StatusUnauthorized))
	g.Expect(expired.firstError()).To(HaveKeyWithValue("message", mautictest.MessageExpiredAccessToken))
}

func TestFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault       mautictest.Fault
		status      int
		contentType string
		check       func(g Gomega, a answer)
	}{
		{mautictest.FaultServerError, 500, "application/json", func(g Gomega, a answer) {
			g.Expect(a.firstError()).To(HaveKeyWithValue("code", float64(500)))
		}},
		{mautictest.FaultUnavailable, 503, "application/json", func(g Gomega, a answer) {
			g.Expect(a.header.Get("Retry-After")).To(Equal("1"))
		}},
		{mautictest.FaultHTML, 200, "text/html; charset=UTF-8", func(g Gomega, a answer) {
			g.Expect(a.raw).To(ContainSubstring("<form"))
		}},
		{mautictest.FaultMalformedJSON, 200, "application/json", func(g Gomega, a answer) {
			g.Expect(json.Valid([]byte(a.raw))).To(BeFalse())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.fault.String(), func(t *testing.T) {
			g, s := parallelServer(t)
			app := s.NewClient("crm", true)
			s.InjectFault(tc.fault, 2)
			for i := 0; i < 2; i++ {
				path := "/oauth/v2/token"
				if i == 1 {
					path = "/api/users/self"
				}
				a := postForm(t, s.URL()+path, clientCredentialsForm(app))
				g.Expect(a.status).To(Equal(tc.status), a.raw)
				g.Expect(a.header.Get("Content-Type")).To(Equal(tc.contentType))
				tc.check(g, a)
			}
			g.Expect(postToken(t, s, clientCredentialsForm(app)).status).To(Equal(http.StatusOK))
			g.Expect(s.TokenRequests()).To(Equal(2))
			g.Expect(s.APIRequests()).To(Equal(1))
		})
	}
	t.Run("until cleared", func(t *testing.T) {
		g, s := parallelServer(t)
		app := s.NewClient("crm", true)
		s.InjectFault(mautictest.FaultServerError, -1)
		for i := 0; i < 3; i++ {
			g.Expect(postToken(t, s, clientCredentialsForm(app)).status).To(Equal(500))
		}
		s.ClearFaults()
		g.Expect(postToken(t, s, clientCredentialsForm(app)).status).To(Equal(200))
	})
	t.Run("slow", func(t *testing.T) {
		g, s := parallelServer(t)
		app := s.NewClient("crm", true)
		s.SetSlowDelay(20 * time.Millisecond)
		s.InjectFault(mautictest.FaultSlow, 1)
		g.Expect(postToken(t, s, clientCredentialsForm(app)).status).To(Equal(200))

		// A slow answer ends with the request's context.
		s.SetSlowDelay(time.Hour)
		s.InjectFault(mautictest.FaultSlow, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		resp, err := http.DefaultClient.Do(formRequest(t, s.URL()+"/oauth/v2/token", clientCredentialsForm(app)).WithContext(ctx))
		if resp != nil {
			_ = resp.Body.Close()
		}
		g.Expect(err).To(MatchError(context.DeadlineExceeded))
	})
}

func TestCountersAndClients(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("crm", true)
	for i := 0; i < 3; i++ {
		postToken(t, s, clientCredentialsForm(app))
	}
	postToken(t, s, url.Values{"grant_type": {"password"}, "client_id": {app.ID}})
	g.Expect(s.TokenRequests()).To(Equal(4))
	g.Expect(s.TokenRequestsByGrant("client_credentials")).To(Equal(3))
	g.Expect(s.TokenRequestsByGrant("password")).To(Equal(1))
	g.Expect(s.TokenRequestsByClient(app.ID)).To(Equal(4))
	g.Expect(s.IssuedAccessTokens()).To(Equal(3))

	s.SetClientSecret(app.ID, "rotated")
	g.Expect(postToken(t, s, clientCredentialsForm(app)).firstError()).
		To(HaveKeyWithValue("type", "invalid_client"))
	app.Secret = "rotated"
	token := postToken(t, s, clientCredentialsForm(app)).json["access_token"].(string)
	s.RemoveClient(app.ID)
	g.Expect(s.AccessTokenValid(token)).To(BeFalse())
	g.Expect(postToken(t, s, clientCredentialsForm(app)).firstError()).
		To(HaveKeyWithValue("type", "invalid_client"))

	s.ResetCounters()
	g.Expect(s.TokenRequests()).To(BeZero())
	g.Expect(s.TokenRequestsByGrant("client_credentials")).To(BeZero())
	g.Expect(s.TokenRequestsByClient(app.ID)).To(BeZero())
	g.Expect(s.IssuedAccessTokens()).To(BeZero())
	g.Expect(s.APIRequests()).To(BeZero())
}

func TestRFC6749Errors(t *testing.T) {
	g, s := parallelServer(t)
	s.SetRFC6749Errors(true)
	app := s.NewClient("crm", true)
	bad := postToken(t, s, url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ID}, "client_secret": {"x"}})
	g.Expect(bad.status).To(Equal(http.StatusUnauthorized))
	g.Expect(bad.json).To(Equal(map[string]any{"error": "invalid_client", "error_description": mautictest.MessageInvalidClient}))
	grant := postToken(t, s, url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ID},
		"client_secret": {app.Secret}, "refresh_token": {"x"}})
	g.Expect(grant.status).To(Equal(http.StatusBadRequest))
	g.Expect(grant.json).To(HaveKeyWithValue("error", "invalid_grant"))
}

func TestRoutes(t *testing.T) {
	g, s := parallelServer(t)
	login := get(t, s.URL()+"/api")
	g.Expect(login.status).To(Equal(http.StatusNotFound))
	g.Expect(login.header.Get("Content-Type")).To(Equal("application/json"))
	notFound := get(t, s.URL()+"/api/contacts/nope")
	g.Expect(notFound.status).To(Equal(http.StatusNotFound))
	g.Expect(notFound.firstError()).To(HaveKeyWithValue("code", float64(404)))

	redirect := get(t, s.URL()+"/dashboard")
	g.Expect(redirect.status).To(Equal(http.StatusFound))
	g.Expect(redirect.header.Get("Location")).To(Equal("/s/login"))
	redirect = get(t, s.URL()+"/index.php/s/dashboard")
	g.Expect(redirect.header.Get("Location")).To(Equal("/index.php/s/login"))
	page := get(t, s.URL()+"/s/login")
	g.Expect(page.status).To(Equal(http.StatusOK))
	g.Expect(page.header.Get("Content-Type")).To(HavePrefix("text/html"))

	req, err := http.NewRequestWithContext(context.Background(), http.MethodPut, s.URL()+"/oauth/v2/token", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(do(t, req).status).To(Equal(http.StatusMethodNotAllowed))
}

func TestTLSServer(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewTLSServer()
	defer s.Close()
	g.Expect(s.URL()).To(HavePrefix("https://"))
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(s.CACertPEM())).To(BeTrue())
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	app := s.NewClient("crm", true)
	resp, err := httpClient.Do(formRequest(t, s.URL()+"/oauth/v2/token", clientCredentialsForm(app)))
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))

	plain := mautictest.NewServerFor(t)
	g.Expect(plain.CACertPEM()).To(BeNil())
}

func TestStartOn(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewUnstartedServer()
	g.Expect(s.StartOn("127.0.0.1:0")).To(Succeed())
	defer s.Close()
	g.Expect(get(t, s.URL()+"/api/users/self").status).To(Equal(http.StatusUnauthorized))

	busy := mautictest.NewUnstartedServer()
	defer busy.Close()
	g.Expect(busy.StartOn(strings.TrimPrefix(s.URL(), "http://"))).NotTo(Succeed())
}

func TestConcurrentUse(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("crm", true)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		req := formRequest(t, s.URL()+"/oauth/v2/token", clientCredentialsForm(app))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
			s.SetAccessTokenLifetime(time.Hour)
			_ = s.TokenRequests()
		}()
	}
	wg.Wait()
	g.Expect(s.TokenRequests()).To(Equal(20))
	g.Expect(s.IssuedAccessTokens()).To(Equal(20))
}

// parallelServer marks t parallel and returns its assertions and a test server of its own.
func parallelServer(t *testing.T) (Gomega, *mautictest.Server) {
	t.Helper()
	t.Parallel()
	return NewWithT(t), mautictest.NewServerFor(t)
}

// postToken posts form to the token endpoint of s, with the header pairs given.
func postToken(t *testing.T, s *mautictest.Server, form url.Values, header ...string) answer {
	t.Helper()
	return postForm(t, s.URL()+"/oauth/v2/token", form, header...)
}

func refreshForm(app mautictest.ClientApp, refreshToken string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ID}, "client_secret": {app.Secret}, "refresh_token": {refreshToken}}
}

func TestFaultNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault          mautictest.Fault
		name           string
		processesGrant bool
	}{
		{mautictest.FaultNone, "None", true},
		{mautictest.FaultServerError, "ServerError", false},
		{mautictest.FaultUnavailable, "Unavailable", false},
		{mautictest.FaultHTML, "HTML", false},
		{mautictest.FaultSlow, "Slow", false},
		{mautictest.FaultMalformedJSON, "MalformedJSON", false},
		{mautictest.FaultDropAfterRead, "DropAfterRead", true},
		{mautictest.FaultFractionalExpiresIn, "FractionalExpiresIn", true},
		{mautictest.FaultUnusableAnswer, "UnusableAnswer", true},
		{mautictest.FaultUnusableAnswerNoToken, "UnusableAnswerNoToken", true},
		{mautictest.FaultSlowThenAnswer, "SlowThenAnswer", true},
		{mautictest.Fault(99), "Fault(99)", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(tc.fault.String()).To(Equal(tc.name))
			g.Expect(tc.fault.ProcessesGrant()).To(Equal(tc.processesGrant))
		})
	}
}

// TestFaultsThatRotate checks that each fault that carries out the grant rotates the presented
// refresh token, and what the client gets instead of (or with) the answer.
func TestFaultsThatRotate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault mautictest.Fault
		// check gets the answer (nil when the request failed) and the request error.
		check func(g Gomega, s *mautictest.Server, a *answer, err error)
	}{
		{mautictest.FaultDropAfterRead, func(g Gomega, _ *mautictest.Server, a *answer, err error) {
			g.Expect(err).To(HaveOccurred())
			g.Expect(a).To(BeNil())
		}},
		{mautictest.FaultFractionalExpiresIn, func(g Gomega, s *mautictest.Server, a *answer, err error) {
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
			g.Expect(a.raw).To(MatchRegexp(`^\{"access_token":"\w+","expires_in":3600\.5,"token_type":"bearer","scope":null,"refresh_token":"\w+"\}$`))
			g.Expect(s.RefreshTokenValid(a.json["refresh_token"].(string))).To(BeTrue())
		}},
		{mautictest.FaultUnusableAnswer, func(g Gomega, s *mautictest.Server, a *answer, err error) {
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(a.header.Get("Content-Type")).To(Equal("text/plain; charset=UTF-8"))
			var body map[string]any
			g.Expect(json.Unmarshal([]byte(a.raw), &body)).To(Succeed())
			g.Expect(body).To(HaveKeyWithValue("expires_in", float64(3600)))
			g.Expect(s.RefreshTokenValid(body["refresh_token"].(string))).To(BeTrue())
		}},
		{mautictest.FaultUnusableAnswerNoToken, func(g Gomega, _ *mautictest.Server, a *answer, err error) {
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
			g.Expect(a.raw).To(Equal(`{"unexpected":true}`))
		}},
		{mautictest.FaultSlowThenAnswer, func(g Gomega, s *mautictest.Server, a *answer, err error) {
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(a.status).To(Equal(http.StatusOK))
			g.Expect(s.RefreshTokenValid(a.json["refresh_token"].(string))).To(BeTrue())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.fault.String(), func(t *testing.T) {
			g, s := parallelServer(t)
			s.SetSlowDelay(20 * time.Millisecond)
			app := s.NewClient("cli", false)
			seeded := s.IssueRefreshToken(app.ID)
			s.InjectFault(tc.fault, 1)

			resp, err := noRedirects.Do(formRequest(t, s.URL()+"/oauth/v2/token", refreshForm(app, seeded)))
			var a *answer
			if err == nil {
				body, readErr := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				g.Expect(readErr).NotTo(HaveOccurred())
				a = &answer{status: resp.StatusCode, header: resp.Header, raw: string(body)}
				if resp.Header.Get("Content-Type") == "application/json" {
					_ = json.Unmarshal(body, &a.json)
				}
			}
			tc.check(g, s, a, err)

			// The grant was carried out: the presented refresh token is spent, new tokens were issued.
			g.Expect(s.RefreshTokenValid(seeded)).To(BeFalse())
			g.Expect(s.IssuedAccessTokens()).To(Equal(1))
			g.Expect(s.RefreshTokensIssued()).To(Equal(1))
			reused := postToken(t, s, refreshForm(app, seeded))
			g.Expect(reused.status).To(Equal(http.StatusBadRequest))
			g.Expect(reused.firstError()).To(HaveKeyWithValue("type", "invalid_grant"))
			g.Expect(s.ReusedRefreshTokens()).To(Equal(1))
			g.Expect(s.TokenRequests()).To(Equal(2))
		})
	}
}

func TestFaultsThatRotateLeaveErrorAnswers(t *testing.T) {
	t.Parallel()
	for _, fault := range []mautictest.Fault{mautictest.FaultFractionalExpiresIn, mautictest.FaultUnusableAnswer, mautictest.FaultUnusableAnswerNoToken} {
		t.Run(fault.String(), func(t *testing.T) {
			g, s := parallelServer(t)
			app := s.NewClient("cli", false)
			s.InjectFault(fault, 1)
			a := postToken(t, s, refreshForm(app, "not-a-refresh-token"))
			g.Expect(a.status).To(Equal(http.StatusBadRequest))
			g.Expect(a.header.Get("Content-Type")).To(Equal("application/json"))
			g.Expect(a.firstError()).To(HaveKeyWithValue("type", "invalid_grant"))
			g.Expect(s.RefreshTokensIssued()).To(BeZero())
		})
	}
}

func TestFaultDropAfterReadDropsErrorAnswers(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("cli", false)
	s.InjectFault(mautictest.FaultDropAfterRead, 1)
	resp, err := noRedirects.Do(formRequest(t, s.URL()+"/oauth/v2/token", refreshForm(app, "not-a-refresh-token")))
	if resp != nil {
		_ = resp.Body.Close()
	}
	g.Expect(err).To(HaveOccurred())
	g.Expect(postToken(t, s, refreshForm(app, "not-a-refresh-token")).status).To(Equal(http.StatusBadRequest))
}

func TestFaultFractionalExpiresInIsTrue(t *testing.T) {
	g, s := parallelServer(t)
	fakeClock := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s.SetClock(fakeClock)
	s.SetAccessTokenLifetime(10 * time.Minute)
	app := s.NewClient("crm", true)
	s.InjectFault(mautictest.FaultFractionalExpiresIn, 1)
	a := postToken(t, s, clientCredentialsForm(app))
	g.Expect(a.raw).To(ContainSubstring(`"expires_in":600.5,`))
	token := a.json["access_token"].(string)
	fakeClock.SetTime(fakeClock.Now().Add(600 * time.Second))
	g.Expect(s.AccessTokenValid(token)).To(BeTrue())
	fakeClock.SetTime(fakeClock.Now().Add(500 * time.Millisecond))
	g.Expect(s.AccessTokenValid(token)).To(BeFalse())
	g.Expect(s.RefreshTokensIssued()).To(BeZero(), "client_credentials issues no refresh token")
}

func TestSlowFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		fault   mautictest.Fault
		rotates bool
	}{
		// FaultSlow waits first: a client that gives up leaves the refresh token unspent.
		{mautictest.FaultSlow, false},
		// FaultSlowThenAnswer carries out the grant first: the client that gives up has lost the new refresh token.
		{mautictest.FaultSlowThenAnswer, true},
	}
	for _, tc := range cases {
		t.Run(tc.fault.String(), func(t *testing.T) {
			g, s := parallelServer(t)
			app := s.NewClient("cli", false)
			seeded := s.IssueRefreshToken(app.ID)
			s.SetSlowDelay(time.Hour)
			s.InjectFault(tc.fault, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			resp, err := http.DefaultClient.Do(formRequest(t, s.URL()+"/oauth/v2/token", refreshForm(app, seeded)).WithContext(ctx))
			if resp != nil {
				_ = resp.Body.Close()
			}
			g.Expect(err).To(MatchError(context.DeadlineExceeded))
			if tc.rotates {
				g.Eventually(s.RefreshTokensIssued).Should(Equal(1))
				g.Expect(s.RefreshTokenValid(seeded)).To(BeFalse())
				return
			}
			g.Consistently(s.RefreshTokensIssued, 100*time.Millisecond).Should(BeZero())
			g.Expect(s.RefreshTokenValid(seeded)).To(BeTrue())
		})
	}
	t.Run("SlowThenAnswer when the server closes", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		s := mautictest.NewServer()
		app := s.NewClient("crm", true)
		s.SetSlowDelay(time.Hour)
		s.InjectFault(mautictest.FaultSlowThenAnswer, 1)
		errs := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(formRequest(t, s.URL()+"/oauth/v2/token", clientCredentialsForm(app)))
			if resp != nil {
				_ = resp.Body.Close()
			}
			errs <- err
		}()
		g.Eventually(s.IssuedAccessTokens).Should(Equal(1))
		s.Close()
		g.Eventually(errs).Should(Receive(HaveOccurred()), "the connection is closed without an answer")
	})
}

func TestFaultsOnAPIRequests(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("crm", true)
	token := postToken(t, s, clientCredentialsForm(app)).json["access_token"].(string)
	self := func() (int, error) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL()+"/api/users/self", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		// A fresh connection each time: net/http retries a GET whose reused connection was dropped.
		resp, err := freshConnections.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}

	s.InjectFault(mautictest.FaultDropAfterRead, 1)
	_, err := self()
	g.Expect(err).To(HaveOccurred())

	s.SetSlowDelay(20 * time.Millisecond)
	s.InjectFault(mautictest.FaultSlowThenAnswer, 1)
	g.Expect(self()).To(Equal(http.StatusOK))

	// Token-only faults neither touch nor count down API requests.
	normal := func(a answer) bool {
		return a.status == http.StatusOK && a.header.Get("Content-Type") == "application/json" &&
			regexp.MustCompile(`^\{"access_token":"\w+","expires_in":3600,"token_type":"bearer","scope":null\}$`).MatchString(a.raw)
	}
	for _, fault := range []mautictest.Fault{mautictest.FaultFractionalExpiresIn, mautictest.FaultUnusableAnswer, mautictest.FaultUnusableAnswerNoToken} {
		s.InjectFault(fault, 1)
		g.Expect(self()).To(Equal(http.StatusOK), fault.String())
		g.Expect(normal(postToken(t, s, clientCredentialsForm(app)))).To(BeFalse(), fault.String())
		g.Expect(normal(postToken(t, s, clientCredentialsForm(app)))).To(BeTrue(), "one request only")
	}
	g.Expect(s.APIRequests()).To(Equal(5))
}

func TestRefreshTokenCounters(t *testing.T) {
	g, s := parallelServer(t)
	const redirect = "http://127.0.0.1:8085/callback"
	app, other := s.NewClient("cli", true), s.NewClient("other", false)
	seeded := s.IssueRefreshToken(app.ID)
	g.Expect(s.RefreshTokensIssued()).To(BeZero(), "seeded tokens are not counted")

	postToken(t, s, clientCredentialsForm(app))
	g.Expect(s.RefreshTokensIssued()).To(BeZero(), "client_credentials issues no refresh token")
	code := s.IssueAuthorizationCode(app.ID, redirect)
	exchanged := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "client_id": {app.ID},
		"client_secret": {app.Secret}, "code": {code}, "redirect_uri": {redirect}})
	g.Expect(exchanged.status).To(Equal(http.StatusOK), exchanged.raw)
	rotated := postToken(t, s, refreshForm(app, seeded))
	g.Expect(rotated.status).To(Equal(http.StatusOK), rotated.raw)
	g.Expect(s.RefreshTokensIssued()).To(Equal(2))
	g.Expect(s.ReusedRefreshTokens()).To(BeZero())

	// Every attempt to spend the rotated token counts: faults, another client and a disabled API included.
	s.InjectFault(mautictest.FaultServerError, 1)
	g.Expect(postToken(t, s, refreshForm(app, seeded)).status).To(Equal(http.StatusInternalServerError))
	g.Expect(postToken(t, s, refreshForm(other, seeded)).status).To(Equal(http.StatusBadRequest))
	s.SetAPIEnabled(false)
	g.Expect(postToken(t, s, refreshForm(app, seeded)).status).To(Equal(http.StatusForbidden))
	s.SetAPIEnabled(true)
	g.Expect(postToken(t, s, refreshForm(app, seeded)).status).To(Equal(http.StatusBadRequest))
	g.Expect(s.ReusedRefreshTokens()).To(Equal(4))
	// A token that was never issued, or revoked, is not a reused one.
	g.Expect(postToken(t, s, refreshForm(app, "never-issued")).status).To(Equal(http.StatusBadRequest))
	s.RevokeRefreshTokens(app.ID)
	g.Expect(postToken(t, s, refreshForm(app, rotated.json["refresh_token"].(string))).status).To(Equal(http.StatusBadRequest))
	g.Expect(s.ReusedRefreshTokens()).To(Equal(4))

	s.ResetCounters()
	g.Expect(s.RefreshTokensIssued()).To(BeZero())
	g.Expect(s.ReusedRefreshTokens()).To(BeZero())
}

func TestConcurrentRefreshCountsOneReuse(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("cli", false)
	for round := 0; round < 10; round++ {
		seeded := s.IssueRefreshToken(app.ID)
		statuses := make(chan int, 2)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			req := formRequest(t, s.URL()+"/oauth/v2/token", refreshForm(app, seeded))
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					statuses <- 0
					return
				}
				_ = resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		wg.Wait()
		close(statuses)
		var got []int
		for status := range statuses {
			got = append(got, status)
		}
		g.Expect(got).To(ConsistOf(http.StatusOK, http.StatusBadRequest))
		g.Expect(s.ReusedRefreshTokens()).To(Equal(round + 1))
	}
	g.Expect(s.RefreshTokensIssued()).To(Equal(10))
}

func TestInjectRandomFaults(t *testing.T) {
	t.Parallel()
	// statuses makes n client_credentials requests and returns their statuses.
	statuses := func(t *testing.T, s *mautictest.Server, app mautictest.ClientApp, n int) []int {
		result := make([]int, 0, n)
		for i := 0; i < n; i++ {
			result = append(result, postToken(t, s, clientCredentialsForm(app)).status)
		}
		return result
	}
	faults := []mautictest.Fault{mautictest.FaultServerError, mautictest.FaultUnavailable}
	t.Run("deterministic from the seed", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		runs := make([][]int, 0, 3)
		for _, seed := range []int64{42, 42, 7} {
			s := mautictest.NewServer()
			app := s.NewClient("crm", true)
			s.InjectRandomFaults(faults, 0.5, seed)
			runs = append(runs, statuses(t, s, app, 40))
			s.Close()
		}
		g.Expect(runs[0]).To(Equal(runs[1]))
		g.Expect(runs[0]).NotTo(Equal(runs[2]))
		g.Expect(runs[0]).To(ContainElements(http.StatusOK, http.StatusInternalServerError, http.StatusServiceUnavailable))
	})
	t.Run("probability", func(t *testing.T) {
		g, s := parallelServer(t)
		app := s.NewClient("crm", true)
		s.InjectRandomFaults(faults, 1, 1)
		g.Expect(statuses(t, s, app, 10)).NotTo(ContainElement(http.StatusOK))
		s.InjectRandomFaults(faults, 0, 1)
		g.Expect(statuses(t, s, app, 10)).To(HaveEach(http.StatusOK))
		s.InjectRandomFaults(nil, 1, 1)
		g.Expect(statuses(t, s, app, 3)).To(HaveEach(http.StatusOK))
	})
	t.Run("until cleared, API requests untouched", func(t *testing.T) {
		g, s := parallelServer(t)
		app := s.NewClient("crm", true)
		token := postToken(t, s, clientCredentialsForm(app)).json["access_token"].(string)
		s.InjectRandomFaults([]mautictest.Fault{mautictest.FaultServerError}, 1, 1)
		g.Expect(get(t, s.URL()+"/api/users/self", "Authorization", "Bearer "+token).status).To(Equal(http.StatusOK))
		g.Expect(statuses(t, s, app, 3)).To(HaveEach(http.StatusInternalServerError))
		s.ClearFaults()
		g.Expect(statuses(t, s, app, 3)).To(HaveEach(http.StatusOK))

		s.InjectRandomFaults([]mautictest.Fault{mautictest.FaultServerError}, 1, 1)
		s.InjectFault(mautictest.FaultUnavailable, 1)
		g.Expect(statuses(t, s, app, 2)).To(Equal([]int{http.StatusServiceUnavailable, http.StatusOK}), "InjectFault replaces random faults")
	})
	t.Run("concurrent use", func(t *testing.T) {
		g, s := parallelServer(t)
		app := s.NewClient("crm", true)
		s.InjectRandomFaults(faults, 0.5, 3)
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			req := formRequest(t, s.URL()+"/oauth/v2/token", clientCredentialsForm(app))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, err := http.DefaultClient.Do(req); err == nil {
					_ = resp.Body.Close()
				}
				s.InjectRandomFaults(faults, 0.5, 3)
			}()
		}
		wg.Wait()
		g.Expect(s.TokenRequests()).To(Equal(20))
	})
}

func TestEchoRequests(t *testing.T) {
	g, s := parallelServer(t)
	app := s.NewClient("crm", true)
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {app.ID}, "client_secret": {"wrong/secret+x"}, "refresh_token": {"rt/1"}}

	quiet := postToken(t, s, form)
	g.Expect(quiet.firstError()).To(HaveKeyWithValue("message", mautictest.MessageInvalidClient))

	s.SetEchoRequests(true)
	echoed := postToken(t, s, form)
	g.Expect(echoed.status).To(Equal(http.StatusBadRequest))
	message, _ := echoed.firstError()["message"].(string)
	g.Expect(message).To(HavePrefix(mautictest.MessageInvalidClient + " (request: "))
	g.Expect(message).To(ContainSubstring("client_secret=wrong%2Fsecret%2Bx"), "form-encoded")
	g.Expect(message).To(ContainSubstring("client_secret=wrong/secret+x"), "decoded")
	g.Expect(message).To(ContainSubstring("refresh_token=rt/1"))

	api := get(t, s.URL()+"/api/users/self", "Authorization", "Bearer forged-token")
	message, _ = api.firstError()["message"].(string)
	g.Expect(message).To(Equal(mautictest.MessageInvalidAccessToken + " (request:  Authorization: Bearer forged-token)"))

	s.AddUser("api", "pa55word")
	s.SetBasicAuthEnabled(true)
	s.SetRFC6749Errors(true)
	basic := get(t, s.URL()+"/api/users/self", "Authorization", "Basic YXBpOndyb25n") // api:wrong
	g.Expect(basic.json).To(HaveKeyWithValue("error_description",
		mautictest.MessageBasicAuthInvalid+" (request:  Authorization: Basic YXBpOndyb25n api:wrong)"))
}
