package mautic

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

func TestCheckTokens(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		token  string
		reason string // "" for a valid token
	}{
		{name: "Mautic token", token: "NzQ3ZjM1ZTc0YjYwYjM0YTExZDQ1OGQ4ZjE5YjYxYjM2"},
		{name: "every allowed character", token: "AZaz09-._~+/"},
		{name: "padding", token: "YWJjZA=="},
		{name: "JWT", token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"},
		{name: "longest", token: strings.Repeat("a", 8<<10)},
		{name: "empty", token: "", reason: "it is empty"},
		{name: "too long", token: strings.Repeat("a", 8<<10+1), reason: "it is 8193 bytes long, more than the limit of 8192"},
		{name: "space", token: "abc def", reason: "byte 4 is a space"},
		{name: "newline", token: "abc\ndef", reason: "byte 4 is a control character"},
		{name: "escape sequence", token: "abc\x1b[31m", reason: "byte 4 is a control character"},
		{name: "DEL", token: "abc\x7f", reason: "byte 4 is a control character"},
		{name: "non-ASCII", token: "abcé", reason: "byte 4 is a non-ASCII byte"},
		{name: "quote", token: `abc"def`, reason: `byte 4 is "\""`},
		{name: "comma", token: "abc,def", reason: `byte 4 is ","`},
		{name: "padding only", token: "==", reason: `it starts with "=" padding`},
		{name: "padding inside", token: "ab=cd", reason: `it holds "=" before byte 4`},
		{name: "space after padding", token: "ab= ", reason: `it holds "=" before byte 4`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			for kind, check := range map[TokenKind]func(string) error{AccessTokenKind: CheckAccessToken, RefreshTokenKind: CheckRefreshToken} {
				err := check(tc.token)
				if tc.reason == "" {
					g.Expect(err).NotTo(HaveOccurred())
					continue
				}
				var invalid *InvalidTokenError
				g.Expect(errors.As(err, &invalid)).To(BeTrue(), "%T %v", err, err)
				g.Expect(invalid.Kind).To(Equal(kind))
				g.Expect(invalid.Reason).To(HavePrefix(tc.reason))
				g.Expect(err.Error()).To(HavePrefix("the server issued an unusable " + string(kind) + ": " + tc.reason))
				g.Expect(err.Error()).NotTo(ContainSubstring("\n"))
				if len(tc.token) >= 4 {
					g.Expect(err.Error()).NotTo(ContainSubstring(tc.token), "the token is never quoted")
				}
				g.Expect(Classify(err)).To(Equal(ClassTransient))
				g.Expect(IsAmbiguous(err)).To(BeFalse())
			}
		})
	}
}

// TestTokenChecksOnlyTheRefreshToken checks that Token returns a bad access token as sent (the
// caller keeps a rotated refresh token first, then refuses it with CheckAccessToken), while a
// rotated refresh token that fails CheckRefreshToken makes the answer unusable.
func TestTokenChecksOnlyTheRefreshToken(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("r", MaxRefreshTokenBytes+1)
	cases := []struct {
		name         string
		grant        Grant
		body         string
		accessToken  string // the Token's, when it succeeds
		refreshToken string
		unusable     bool // *UnusableAnswerError, else *UnexpectedResponseError, when failing
		failure      string
	}{
		{name: "bad access token is returned", grant: GrantRefreshToken,
			body: `{"access_token":"bad token\u001b[0m","refresh_token":"rt-new"}`, accessToken: "bad token\x1b[0m", refreshToken: "rt-new"},
		{name: "bad access token, client_credentials", grant: GrantClientCredentials,
			body: `{"access_token":"a,b"}`, accessToken: "a,b"},
		{name: "rotated refresh token with a space", grant: GrantRefreshToken,
			body: `{"access_token":"at","refresh_token":"rt new"}`, unusable: true, failure: "byte 3 is a space"},
		{name: "rotated refresh token too long", grant: GrantRefreshToken,
			body: `{"access_token":"at","refresh_token":"` + long + `"}`, unusable: true, failure: "more than the limit of 8192"},
		{name: "rotated refresh token with a control character", grant: GrantRefreshToken,
			body: `{"access_token":"at","refresh_token":"rt\u0000"}`, unusable: true, failure: "control character"},
		{name: "refresh token of a code exchange", grant: GrantAuthorizationCode,
			body: `{"access_token":"at","refresh_token":"rt\tnew"}`, failure: "control character"},
		{name: "empty refresh token means no rotation", grant: GrantRefreshToken,
			body: `{"access_token":"at","refresh_token":""}`, accessToken: "at", refreshToken: "rt-presented"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, answerWith(http.StatusOK, "application/json", tc.body))
			tok, err := New(fastOptions()).Token(context.Background(), TokenRequest{
				Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: tc.grant, ClientID: "1_a", ClientSecret: "s3cret",
				RefreshToken: "rt-presented", Code: "code", RedirectURI: "http://127.0.0.1:8085/callback",
			})
			if tc.failure == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(tok.AccessToken).To(Equal(tc.accessToken))
				g.Expect(tok.RefreshToken).To(Equal(tc.refreshToken))
				g.Expect(CheckAccessToken(tok.AccessToken) != nil).To(Equal(strings.HasPrefix(tc.name, "bad access token")))
				return
			}
			var unexpected *UnexpectedResponseError
			g.Expect(errors.As(err, &unexpected)).To(BeTrue(), "%T %v", err, err)
			g.Expect(unexpected.Detail).To(HavePrefix("a refresh_token that cannot be stored ("))
			g.Expect(unexpected.Detail).To(ContainSubstring(tc.failure))
			var unusable *UnusableAnswerError
			g.Expect(errors.As(err, &unusable)).To(Equal(tc.unusable))
			if tc.unusable {
				g.Expect(unusable.RefreshToken).To(BeEmpty())
				g.Expect(unusable.MayHaveRotated()).To(BeTrue())
				g.Expect(IsAmbiguous(err)).To(BeTrue(), "the rotated refresh token is lost")
			}
			g.Expect(Classify(err)).To(Equal(ClassTransient))
			expectNoSecrets(g, err, "s3cret", "rt-presented", "rt new", long[:64])
		})
	}
}

// TestRecoveryChecksTheRefreshToken checks that a refresh token recovered from an unusable answer
// passes CheckRefreshToken, as a usable answer's must.
func TestRecoveryChecksTheRefreshToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		body      string
		recovered string
	}{
		{"b64token", `{"access_token":"at","refresh_token":"rt/new+x=="}`, "rt/new+x=="},
		{"space", `{"access_token":"at","refresh_token":"rt new"}`, ""},
		{"quote", `{"access_token":"at","refresh_token":"rt\"new"}`, ""},
		{"form, comma", `access_token=at&refresh_token=rt%2Cnew`, ""},
		{"truncated, too long", `{"refresh_token":"` + strings.Repeat("r", MaxRefreshTokenBytes+1) + `","x`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			srv := rawServer(t, answerWith(http.StatusOK, "text/plain", tc.body))
			opts := fastOptions()
			opts.MaxBodyBytes = 2 * MaxRefreshTokenBytes
			_, err := New(opts).Token(context.Background(), TokenRequest{
				Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true}, Grant: GrantRefreshToken, ClientID: "1_a", RefreshToken: "rt-presented",
			})
			var unusable *UnusableAnswerError
			g.Expect(errors.As(err, &unusable)).To(BeTrue(), "%T %v", err, err)
			g.Expect(unusable.RefreshToken).To(Equal(tc.recovered))
		})
	}
}

// TestMautictestTokensPass checks that the test server's tokens pass the checks.
func TestMautictestTokensPass(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	app := s.NewClient("cli", false)
	tok, err := New(fastOptions()).Token(context.Background(), refreshRequest(s, app, s.IssueRefreshToken(app.ID)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(CheckAccessToken(tok.AccessToken)).To(Succeed())
	g.Expect(CheckRefreshToken(tok.RefreshToken)).To(Succeed())
}
