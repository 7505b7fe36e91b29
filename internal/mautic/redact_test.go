package mautic

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// Secrets of the echo tests: they need form, path, JSON and Go escaping (slash, plus, quote,
// space, ampersand, percent, non-ASCII), so that every echoed form differs from the raw one.
const (
	echoClientSecret = `cl1ent/secret+"é" &x`
	echoRefreshToken = "rt/presented+token=="
	echoPassword     = `p@ss w/rd%"`
	echoCode         = "c0de/with+plus"
	echoAccessToken  = "AT/verify+token="
	echoBasicUser    = "api-user"
	echoBasicPass    = `b@sic p/ss"`
	answerAccess     = "AT-from/the+answer"
	answerRefresh    = "RT-from/the+answer"
	answerBadRefresh = "RT with spaces/+"
)

// echoOf is what a hostile server echoes of a request: the raw body (form-encoded secrets), each
// form value decoded, the Authorization header, and the decoded Basic credentials.
func echoOf(r *http.Request) string {
	body, _ := io.ReadAll(r.Body)
	parts := []string{string(body)}
	form, _ := url.ParseQuery(string(body))
	keys := make([]string, 0, len(form))
	for key := range form {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	for _, key := range keys {
		parts = append(parts, key+"="+strings.Join(form[key], ","))
	}
	if authorization := r.Header.Get("Authorization"); authorization != "" {
		parts = append(parts, "Authorization: "+authorization)
	}
	if user, password, ok := r.BasicAuth(); ok {
		parts = append(parts, "user="+user, user+":"+password, password)
	}
	return strings.Join(parts, " | ")
}

// goJSON returns s JSON-escaped as Go writes it, without the quotes.
func goJSON(s string) string {
	quoted, _ := json.Marshal(s)
	return string(quoted[1 : len(quoted)-1])
}

// phpJSON returns s JSON-escaped as PHP's json_encode writes it (for the test's secrets).
func phpJSON(s string) string {
	var b strings.Builder
	encoder := json.NewEncoder(&b)
	encoder.SetEscapeHTML(false)
	_ = encoder.Encode(s)
	quoted := strings.TrimSpace(b.String())
	return strings.NewReplacer("/", `\/`, "é", `\u00e9`).Replace(quoted[1 : len(quoted)-1])
}

// echoedForms returns the forms of secret a server may echo: raw, form-encoded, path-encoded,
// JSON-escaped (Go and PHP) and Go-quoted.
func echoedForms(secret string) []string {
	quoted := strconv.Quote(secret)
	return []string{secret, url.QueryEscape(secret), url.PathEscape(secret), goJSON(secret), phpJSON(secret), quoted[1 : len(quoted)-1]}
}

// expectRedacted fails when err, or any server text it carries, holds a form of a secret.
func expectRedacted(g Gomega, err error, secrets ...string) {
	texts := []string{err.Error()}
	var mauticErr *Error
	if errors.As(err, &mauticErr) {
		texts = append(texts, mauticErr.Type, mauticErr.Message)
	}
	var unexpected *UnexpectedResponseError
	if errors.As(err, &unexpected) {
		texts = append(texts, unexpected.ContentType, unexpected.Detail)
	}
	for _, secret := range secrets {
		for _, form := range echoedForms(secret) {
			for _, text := range texts {
				g.Expect(text).NotTo(ContainSubstring(form), "secret %q leaked as %q", secret, form)
			}
		}
	}
}

func TestEchoedSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	allSecrets := []string{echoClientSecret, echoRefreshToken, echoPassword, echoCode, echoAccessToken,
		BearerAuthorization(echoAccessToken), BasicAuthorization(echoBasicUser, echoBasicPass),
		strings.TrimPrefix(BasicAuthorization(echoBasicUser, echoBasicPass), "Basic "), echoBasicUser + ":" + echoBasicPass, echoBasicPass,
		answerAccess, answerRefresh, answerBadRefresh}
	mauticError := func(status int, errorType, message string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"message": message, "code": status, "type": errorType}}})
			answerWith(status, "application/json", string(body))(w, nil)
		}
	}
	cases := []struct {
		name string
		// verify makes the request a Verify call with this Authorization value, else a token request.
		verify string
		grant  Grant
		answer func(w http.ResponseWriter, r *http.Request, echo string)
		check  func(g Gomega, err error)
	}{
		{
			name: "Mautic error message", grant: GrantRefreshToken,
			answer: func(w http.ResponseWriter, _ *http.Request, echo string) { mauticError(400, "invalid_grant", echo)(w) },
			check:  expectErrorType("invalid_grant"),
		},
		{
			name: "Mautic error type", grant: GrantPassword,
			answer: func(w http.ResponseWriter, _ *http.Request, echo string) { mauticError(400, echo, "bad")(w) },
		},
		{
			name: "RFC 6749 error_description", grant: GrantAuthorizationCode,
			answer: func(w http.ResponseWriter, _ *http.Request, echo string) {
				body, _ := json.Marshal(map[string]string{"error": "invalid_grant", "error_description": echo})
				answerWith(400, "application/json", string(body))(w, nil)
			},
			check: expectErrorType("invalid_grant"),
		},
		{
			name: "message quoting the request as Go JSON", grant: GrantPassword,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				quoted, _ := json.Marshal(r.PostForm)
				mauticError(400, "invalid_request", "request was "+string(quoted))(w)
			},
		},
		{
			name: "message quoting the request as PHP JSON", grant: GrantRefreshToken,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				parts := make([]string, 0, 2)
				for _, key := range []string{"client_secret", "refresh_token"} {
					parts = append(parts, `"`+key+`":"`+phpJSON(r.PostForm.Get(key))+`"`)
				}
				mauticError(400, "invalid_request", "{"+strings.Join(parts, ",")+"}")(w)
			},
		},
		{
			name: "legacy error object", grant: GrantClientCredentials,
			answer: func(w http.ResponseWriter, _ *http.Request, echo string) {
				body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": echo, "code": 403}})
				answerWith(403, "application/json", string(body))(w, nil)
			},
		},
		{
			name: "message longer than the limit, secret at the cut", grant: GrantClientCredentials,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				mauticError(400, "invalid_client", strings.Repeat("x", maxErrorMessageBytes-6)+r.PostForm.Get("client_secret"))(w)
			},
			check: func(g Gomega, err error) {
				g.Expect(err.Error()).NotTo(ContainSubstring(echoClientSecret[:4]))
			},
		},
		{
			name: "content type of an unusable refresh answer", grant: GrantRefreshToken,
			answer: func(w http.ResponseWriter, r *http.Request, echo string) {
				w.Header().Set("Content-Type", "text/plain; echo="+strconv.Quote(r.PostForm.Get("client_secret")+" "+r.PostForm.Get("refresh_token")))
				_, _ = w.Write([]byte(echo))
			},
			check: func(g Gomega, err error) {
				var unusable *UnusableAnswerError
				g.Expect(errors.As(err, &unusable)).To(BeTrue(), "%T %v", err, err)
			},
		},
		{
			name: "content type of a 502", grant: GrantClientCredentials,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				w.Header().Set("Content-Type", "text/html; x="+url.QueryEscape(r.PostForm.Get("client_secret")))
				w.WriteHeader(502)
			},
			check: expectUnexpected(502, "not JSON"),
		},
		{
			name: "redirect target", grant: GrantRefreshToken,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				w.Header().Set("Location", "/login/"+url.PathEscape(r.PostForm.Get("refresh_token"))+"/"+
					url.PathEscape(r.PostForm.Get("client_secret"))+"?q="+url.QueryEscape(r.PostForm.Get("client_secret")))
				w.WriteHeader(http.StatusFound)
			},
			check: func(g Gomega, err error) {
				expectUnexpected(302, "a redirect to")(g, err)
				g.Expect(err.Error()).To(ContainSubstring("/login/" + Redacted + "/" + Redacted + `"`))
			},
		},
		{
			name: "malformed status code quoted by net/http", grant: GrantRefreshToken,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				writeRaw(w, "HTTP/1.1 "+r.PostForm.Get("refresh_token")+" OK\r\n\r\n")
			},
			check: func(g Gomega, err error) {
				g.Expect(err).To(MatchError(ContainSubstring(`malformed HTTP status code "` + Redacted + `"`)))
			},
		},
		{
			name: "malformed header line quoted by net/http", grant: GrantPassword,
			answer: func(w http.ResponseWriter, r *http.Request, _ string) {
				writeRaw(w, "HTTP/1.1 200 OK\r\nX "+r.PostForm.Get("password")+" "+r.PostForm.Get("client_secret")+"\r\n\r\n")
			},
			check: func(g Gomega, err error) {
				g.Expect(err).To(MatchError(ContainSubstring(`malformed MIME header: missing colon: "X ` + Redacted + " " + Redacted + `"`)))
			},
		},
		{
			name: "tokens read from an error answer", grant: GrantClientCredentials,
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) {
				body, _ := json.Marshal(map[string]any{"error": "invalid_request", "error_description": "use " + answerAccess + " or " + answerRefresh,
					"access_token": answerAccess, "refresh_token": answerRefresh})
				answerWith(400, "application/json", string(body))(w, nil)
			},
		},
		{
			name: "rotated refresh token that cannot be stored", grant: GrantRefreshToken,
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) {
				body, _ := json.Marshal(map[string]any{"access_token": answerAccess, "refresh_token": answerBadRefresh})
				answerWith(200, "application/json; note="+strconv.Quote(answerBadRefresh+" "+answerAccess), string(body))(w, nil)
			},
			check: func(g Gomega, err error) {
				var unusable *UnusableAnswerError
				g.Expect(errors.As(err, &unusable)).To(BeTrue(), "%T %v", err, err)
				g.Expect(unusable.RefreshToken).To(BeEmpty())
				g.Expect(unusable.Detail).To(ContainSubstring("a refresh_token that cannot be stored"))
				g.Expect(IsAmbiguous(err)).To(BeTrue())
			},
		},
		{
			name: "verify, bearer token echoed", verify: BearerAuthorization(echoAccessToken),
			answer: func(w http.ResponseWriter, _ *http.Request, echo string) { mauticError(401, "invalid_grant", echo)(w) },
			check:  expectErrorType("invalid_grant"),
		},
		{
			name: "verify, basic credentials echoed", verify: BasicAuthorization(echoBasicUser, echoBasicPass),
			answer: func(w http.ResponseWriter, r *http.Request, echo string) {
				w.Header().Set("Content-Type", "application/json; x="+strconv.Quote(r.Header.Get("Authorization")))
				body, _ := json.Marshal(map[string]string{"error": "access_denied", "error_description": echo})
				w.WriteHeader(403)
				_, _ = w.Write(body)
			},
			check: func(g Gomega, err error) {
				expectErrorType("access_denied")(g, err)
				g.Expect(err.Error()).To(ContainSubstring(echoBasicUser), "the user name is no secret")
			},
		},
		{
			name: "verify, token echoed in a redirect", verify: BearerAuthorization(echoAccessToken),
			answer: func(w http.ResponseWriter, _ *http.Request, _ string) {
				w.Header().Set("Location", "https://login.example.com/"+url.PathEscape(echoAccessToken))
				w.WriteHeader(http.StatusSeeOther)
			},
			check: expectUnexpected(303, "a redirect to \"https://login.example.com/"+Redacted+"\""),
		},
		{
			name: "verify, HTML page with the token", verify: BearerAuthorization(echoAccessToken),
			answer: func(w http.ResponseWriter, _ *http.Request, echo string) {
				w.Header().Set("Content-Type", "text/html; token="+url.QueryEscape(echoAccessToken))
				_, _ = w.Write([]byte(echo))
			},
			check: expectUnexpected(200, "not JSON"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
				echo := echoOf(r)
				r.PostForm, _ = url.ParseQuery(strings.SplitN(echo, " | ", 2)[0])
				tc.answer(w, r, echo)
			})
			site := Site{BaseURL: srv.URL, AllowInsecureHTTP: true}
			var err error
			if tc.verify != "" {
				_, err = New(fastOptions()).Verify(context.Background(), VerifyRequest{Site: site, Authorization: tc.verify})
			} else {
				_, err = New(fastOptions()).Token(context.Background(), TokenRequest{
					Site: site, Grant: tc.grant, ClientID: "1_client", ClientSecret: echoClientSecret, RefreshToken: echoRefreshToken,
					Username: "admin", Password: echoPassword, Code: echoCode, RedirectURI: "http://127.0.0.1:8085/callback",
				})
			}
			g.Expect(err).To(HaveOccurred())
			expectRedacted(g, err, allSecrets...)
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
			if tc.check != nil {
				tc.check(g, err)
			}
		})
	}
}

// writeRaw writes raw bytes as the answer on the hijacked connection, and closes it.
func writeRaw(w http.ResponseWriter, raw string) {
	conn, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	_, _ = buffered.WriteString(raw)
	_ = buffered.Flush()
}

// expectErrorType checks for an *Error of errorType whose message was redacted.
func expectErrorType(errorType string) func(g Gomega, err error) {
	return func(g Gomega, err error) {
		var mauticErr *Error
		g.Expect(errors.As(err, &mauticErr)).To(BeTrue(), "%T %v", err, err)
		g.Expect(mauticErr.Type).To(Equal(errorType))
		g.Expect(mauticErr.Message).To(ContainSubstring(Redacted))
	}
}

func TestShortSecretsAreNotRedacted(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	srv := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]string{"error": "invalid_client", "error_description": echoOf(r)})
		answerWith(400, "application/json", string(body))(w, r)
	})
	_, err := New(fastOptions()).Token(context.Background(), TokenRequest{
		Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "abc",
	})
	var mauticErr *Error
	g.Expect(errors.As(err, &mauticErr)).To(BeTrue(), "%T %v", err, err)
	g.Expect(mauticErr.Message).To(ContainSubstring("client_secret=abc"))
	g.Expect(mauticErr.Message).NotTo(ContainSubstring(Redacted))
}

func TestRedactor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		secrets []string
		auth    string
		in      string
		want    string
	}{
		{name: "raw", secrets: []string{"s3cret"}, in: "bad s3cret!", want: "bad [redacted]!"},
		{name: "every occurrence", secrets: []string{"s3cret"}, in: "s3crets3cret", want: "[redacted][redacted]"},
		{name: "form-encoded", secrets: []string{"a b/c+d"}, in: "x=a+b%2Fc%2Bd&y", want: "x=[redacted]&y"},
		{name: "percent-encoded space", secrets: []string{"a b/c+d"}, in: "x=a%20b%2Fc%2Bd", want: "x=[redacted]"},
		{name: "path-encoded", secrets: []string{"a b/c+d"}, in: "/p/a%20b%2Fc+d", want: "/p/[redacted]"},
		{name: "Go JSON", secrets: []string{`a"<b>`}, in: `{"s":"a\"\u003cb\u003e"}`, want: `{"s":"[redacted]"}`},
		{name: "JSON without HTML escaping", secrets: []string{`a"<b>`}, in: `"a\"<b>"`, want: `"[redacted]"`},
		{name: "PHP JSON", secrets: []string{"a/é\U0001F600"}, in: `"a\/\u00e9\ud83d\ude00"`, want: `"[redacted]"`},
		{name: "Go-quoted", secrets: []string{"a\"b\tc"}, in: `"a\"b\tc"`, want: `"[redacted]"`},
		{name: "longest first", secrets: []string{"abcd", "abcdef"}, in: "abcdefg abcd", want: "[redacted]g [redacted]"},
		{name: "short values ignored", secrets: []string{"abc", "", "a"}, in: "abc a", want: "abc a"},
		{name: "no secrets", in: "text", want: "text"},
		{name: "bearer", auth: "Bearer tok3n-value", in: "got Bearer tok3n-value and tok3n-value", want: "got [redacted] and [redacted]"},
		{name: "basic", auth: BasicAuthorization("user", "pa55word"), in: BasicAuthorization("user", "pa55word") + " " +
			strings.TrimPrefix(BasicAuthorization("user", "pa55word"), "Basic ") + " user:pa55word pa55word user",
			want: "[redacted] [redacted] [redacted] [redacted] user"},
		{name: "basic, short password", auth: BasicAuthorization("user", "pw"), in: "user:pw pw", want: "[redacted] pw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			r := newRedactor(tc.secrets...)
			if tc.auth != "" {
				r.addAuthorization(tc.auth)
			}
			g.Expect(r.redact(tc.in)).To(Equal(tc.want))
			g.Expect(r.contains(tc.in)).To(Equal(tc.want != tc.in))
		})
	}
	t.Run("nil redacts nothing", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		var r *redactor
		r.add("secret")
		g.Expect(r.redact("secret")).To(Equal("secret"))
		g.Expect(r.contains("secret")).To(BeFalse())
	})
	t.Run("added later", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		r := newRedactor("first")
		g.Expect(r.redact("first second")).To(Equal("[redacted] second"))
		r.add("second")
		g.Expect(r.redact("first second")).To(Equal("[redacted] [redacted]"))
	})
}

func TestAnswerTokens(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want []string
	}{
		{"JSON", `{"access_token":"at-1234","refresh_token":"rt-5678"}`, []string{"at-1234", "rt-5678"}},
		{"form", `access_token=at-1234&refresh_token=rt%2F5678`, []string{"at-1234", "rt/5678"}},
		{"truncated JSON", `{"access_token":"at-1234","refresh_token":"rt-5678","x`, []string{"rt-5678"}},
		{"nothing", `<html></html>`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			var got []string
			for _, token := range answerTokens([]byte(tc.body)) {
				if token != "" && !slices.Contains(got, token) {
					got = append(got, token)
				}
			}
			g.Expect(got).To(ConsistOf(tc.want))
		})
	}
}

// TestMautictestEchoIsRedacted runs realistic failures against the test server quoting each
// request in its error messages (mautictest's SetEchoRequests).
func TestMautictestEchoIsRedacted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		run     func(c Client, s *mautictest.Server, app mautictest.ClientApp) ([]string, error)
		errType string
	}{
		{
			name: "wrong client secret", errType: "invalid_client",
			run: func(c Client, s *mautictest.Server, app mautictest.ClientApp) ([]string, error) {
				req := ccRequest(s, app)
				req.ClientSecret = "wrong/secret+" + app.Secret
				_, err := c.Token(context.Background(), req)
				return []string{req.ClientSecret, app.Secret}, err
			},
		},
		{
			name: "spent refresh token", errType: "invalid_grant",
			run: func(c Client, s *mautictest.Server, app mautictest.ClientApp) ([]string, error) {
				req := refreshRequest(s, app, "spent/refresh+token")
				_, err := c.Token(context.Background(), req)
				return []string{req.RefreshToken, app.Secret}, err
			},
		},
		{
			name: "password grant", errType: "unauthorized_client",
			run: func(c Client, s *mautictest.Server, app mautictest.ClientApp) ([]string, error) {
				req := ccRequest(s, app)
				req.Grant, req.Username, req.Password = GrantPassword, "admin", "hunter2 hunter2"
				_, err := c.Token(context.Background(), req)
				return []string{req.Password, app.Secret}, err
			},
		},
		{
			name: "forged bearer token", errType: "invalid_grant",
			run: func(c Client, s *mautictest.Server, _ mautictest.ClientApp) ([]string, error) {
				_, err := c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true},
					Authorization: BearerAuthorization("forged/token+1")})
				return []string{"forged/token+1"}, err
			},
		},
		{
			name: "wrong basic password", errType: "access_denied",
			run: func(c Client, s *mautictest.Server, _ mautictest.ClientApp) ([]string, error) {
				s.AddUser("api", "right")
				s.SetBasicAuthEnabled(true)
				authorization := BasicAuthorization("api", "wr0ng pass")
				_, err := c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: authorization})
				return []string{"wr0ng pass", authorization, strings.TrimPrefix(authorization, "Basic ")}, err
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			s := mautictest.NewServerFor(t)
			s.SetEchoRequests(true)
			secrets, err := tc.run(New(fastOptions()), s, s.NewClient("crm", true))
			expectErrorType(tc.errType)(g, err)
			g.Expect(err.Error()).To(ContainSubstring(" (request: "))
			expectRedacted(g, err, secrets...)
		})
	}
}
