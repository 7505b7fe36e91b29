// Package mautic is the client for Mautic's OAuth2 token endpoint and API. It sends token
// requests as form POSTs of its own (client id and secret in the body) and reads the answers
// leniently (expires_in as a number, a fractional number or a string), reads Mautic's and
// RFC 6749's error answers into *Error, refuses answers that are not JSON, link-local targets,
// redirects and oversized bodies, limits requests per host, and classifies every error as
// transient, configuration or reauthorization.
//
// Mautic rotates refresh tokens: a refresh_token grant deletes the presented refresh token in the
// request that issues the new one. So a 2xx refresh answer that cannot be used is an
// *UnusableAnswerError carrying the new refresh token when it can be recovered from the body, and
// IsAmbiguous tells the failures after which the server may have rotated the refresh token
// without the client learning the new one. The package knows nothing of Kubernetes.
package mautic

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// Client talks to one or more Mautic sites. Safe for concurrent use.
type Client interface {
	// Token obtains an access token with req.Grant. A 2xx answer to a refresh_token grant that
	// cannot be used is an *UnusableAnswerError (the server may have rotated the refresh token);
	// IsAmbiguous tells the failures that leave unknown whether the server acted on the request.
	Token(ctx context.Context, req TokenRequest) (*Token, error)
	// Verify calls an authenticated API path (default DefaultVerifyPath) with an Authorization header value.
	Verify(ctx context.Context, req VerifyRequest) (*VerifyResult, error)
}

var _ Client = (*client)(nil)

// DefaultTokenPath is Mautic's OAuth2 token endpoint, relative to the site URL.
const DefaultTokenPath = "/oauth/v2/token"

// DefaultVerifyPath is the cheapest authenticated Mautic API call (it needs no permission).
const DefaultVerifyPath = "/api/users/self"

// Grant is an OAuth2 grant type, as sent in grant_type.
type Grant string

const (
	// GrantClientCredentials is the client_credentials grant (Mautic 4.0 and later, admin-created clients).
	GrantClientCredentials Grant = "client_credentials"
	// GrantRefreshToken is the refresh_token grant; Mautic rotates the refresh token on every use.
	GrantRefreshToken Grant = "refresh_token"
	// GrantPassword is the password grant, for non-Mautic OAuth2 servers (Mautic refuses it).
	GrantPassword Grant = "password"
	// GrantAuthorizationCode exchanges an authorization code (TokenRequest.Code and RedirectURI).
	GrantAuthorizationCode Grant = "authorization_code"
)

// Site is where and how to reach one Mautic installation.
type Site struct {
	// BaseURL is the site URL, normalised by NormalizeURL, e.g. https://m.example.com or https://m.example.com/index.php.
	BaseURL string
	// CACert is an optional PEM bundle trusted in addition to the system roots.
	CACert []byte
}

// TokenRequest asks for an access token with one grant.
type TokenRequest struct {
	Site
	// Grant is the grant type to use.
	Grant Grant
	// ClientID is the OAuth2 client id, sent in the form body.
	ClientID string
	// ClientSecret is the OAuth2 client secret, sent in the form body (never in a header).
	ClientSecret string
	// RefreshToken is the refresh token to present (GrantRefreshToken).
	RefreshToken string
	// Username is the resource owner's name (GrantPassword).
	Username string
	// Password is the resource owner's password (GrantPassword).
	Password string
	// Code is the authorization code to exchange (GrantAuthorizationCode).
	Code string
	// RedirectURI is the redirect URI the code was issued for (GrantAuthorizationCode).
	RedirectURI string
	// TokenPath is the token endpoint path; default DefaultTokenPath.
	TokenPath string
	// Scopes are optional scopes to ask for (client_credentials and password grants; a refresh
	// keeps the scopes already granted).
	Scopes []string
}

// Token is an access token as the server issued it.
type Token struct {
	// AccessToken is the bearer token.
	AccessToken string
	// TokenType is token_type as sent, lower-cased ("bearer").
	TokenType string
	// RefreshToken is the new refresh token; empty when the server sent none (client_credentials).
	// On a GrantRefreshToken request to a server that does not rotate, it is the token presented.
	RefreshToken string
	// ExpiresIn is the token's lifetime from expires_in (fractions of a second kept); 0 when the
	// server sent none.
	ExpiresIn time.Duration
}

// VerifyRequest asks Verify to call an authenticated API path.
type VerifyRequest struct {
	Site
	// Path is the API path to call; default DefaultVerifyPath.
	Path string
	// Authorization is the full header value: "Bearer <token>" or "Basic <b64>".
	Authorization string
}

// VerifyResult is what a successful Verify learned about the site.
type VerifyResult struct {
	// MauticVersion is the Mautic-Version response header, "" when absent.
	MauticVersion string
}

// BearerAuthorization returns the Authorization header value for an access token. The word
// "Bearer" is capitalised: Mautic matches it case-sensitively.
func BearerAuthorization(accessToken string) string {
	return "Bearer " + accessToken
}

// BasicAuthorization returns the Authorization header value for Mautic's HTTP basic auth.
func BasicAuthorization(username, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
}

// Defaults for Options.
const (
	DefaultTimeout           = 30 * time.Second
	DefaultMaxBodyBytes      = 1 << 20
	DefaultRequestsPerSecond = 5
	DefaultBurst             = 10
	DefaultUserAgent         = "mautic-operator"
)

// Options configure a Client. The zero value gives the defaults.
type Options struct {
	// Timeout bounds each request; default DefaultTimeout.
	Timeout time.Duration
	// MaxBodyBytes limits a response body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AllowLinkLocal allows link-local (169.254/16, fe80::/10) and cloud metadata targets
	// (169.254.169.254, fd00:ec2::254, metadata.google.internal). They are refused by default,
	// checked at dial time on the resolved IP so that DNS tricks don't bypass it.
	AllowLinkLocal bool
	// RequestsPerSecond is the per-host token-bucket limit; default DefaultRequestsPerSecond,
	// negative for no limit.
	RequestsPerSecond float64
	// Burst is the per-host bucket size; default DefaultBurst.
	Burst int
	// UserAgent is sent with every request; default DefaultUserAgent.
	UserAgent string
	// Observe, when set, is called after every HTTP request, for metrics. statusCode is 0 on a
	// transport error; grant is empty for OpVerify.
	Observe func(op Op, grant Grant, statusCode int, d time.Duration)
	// Clock measures durations for Observe; default the real clock.
	Clock clock.PassiveClock
}

// client is the Client implementation.
type client struct {
	opts Options

	mu          sync.Mutex
	httpClients map[[32]byte]*http.Client
	limiters    map[string]*rate.Limiter
}

// New returns a Client with opts, defaults filled in.
func New(opts Options) Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.RequestsPerSecond == 0 {
		opts.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &client{
		opts:        opts,
		httpClients: map[[32]byte]*http.Client{},
		limiters:    map[string]*rate.Limiter{},
	}
}

// Token implements Client.
func (c *client) Token(ctx context.Context, req TokenRequest) (*Token, error) {
	if err := checkTokenRequest(req); err != nil {
		return nil, err
	}
	base, err := NormalizeURL(req.BaseURL)
	if err != nil {
		return nil, err
	}
	hc, err := c.httpClient(req.CACert)
	if err != nil {
		return nil, err
	}
	tokenURL := base + cleanPath(req.TokenPath, DefaultTokenPath)

	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	call := &callInfo{op: OpToken, grant: req.Grant}
	ctx = withCall(ctx, call)

	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(tokenForm(req).Encode()))
	if err != nil {
		return nil, &ConfigError{Field: "token path", Message: "cannot build the request: check the path"}
	}
	httpReq.Header.Set("Content-Type", formMediaType)
	resp, err := hc.Do(httpReq)
	if err != nil {
		return nil, unwrapTransportError(call, err)
	}
	defer func() { _ = resp.Body.Close() }()
	// guardedTransport has read the body through the size limit (MaxBodyBytes+1 bytes at most),
	// with the read error, if any, after what it read.
	body, readErr := io.ReadAll(resp.Body)
	answer := &tokenAnswer{
		grant:       req.Grant,
		statusCode:  resp.StatusCode,
		contentType: resp.Header.Get("Content-Type"),
		body:        body,
		readErr:     readErr,
		limit:       c.opts.MaxBodyBytes,
	}
	if readErr != nil && !answer.mayHaveRotated() {
		return nil, &requestError{
			message:     fmt.Sprintf("%s request to %s failed: reading the answer: %v", OpToken.endpoint(), cleanTarget(tokenURL), readErr),
			err:         readErr,
			mayHaveSent: true,
		}
	}
	return answer.token(req.RefreshToken)
}

// tokenForm returns the token request's form: grant_type, the grant's parameters and the client
// id and secret (in the body, never in a Basic header: Mautic refuses one on the token endpoint
// unless its basic auth is on).
func tokenForm(req TokenRequest) url.Values {
	form := url.Values{"grant_type": {string(req.Grant)}}
	switch req.Grant {
	case GrantClientCredentials:
		setScope(form, req.Scopes)
	case GrantRefreshToken:
		form.Set("refresh_token", req.RefreshToken)
	case GrantPassword:
		form.Set("username", req.Username)
		form.Set("password", req.Password)
		setScope(form, req.Scopes)
	case GrantAuthorizationCode:
		form.Set("code", req.Code)
		form.Set("redirect_uri", req.RedirectURI)
	}
	form.Set("client_id", req.ClientID)
	if req.ClientSecret != "" {
		form.Set("client_secret", req.ClientSecret)
	}
	return form
}

// setScope sets scope to the space-separated scopes, when there are any.
func setScope(form url.Values, scopes []string) {
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
}

// checkTokenRequest refuses a request that cannot succeed, before anything is sent.
func checkTokenRequest(req TokenRequest) error {
	missing := func(field, key string) error {
		return &ConfigError{Field: field, Message: "the " + key + " is empty: set " + key + " in the credentials Secret"}
	}
	if req.ClientID == "" {
		return missing("clientID", "client_id")
	}
	switch req.Grant {
	case GrantClientCredentials:
		if req.ClientSecret == "" {
			return missing("clientSecret", "client_secret")
		}
	case GrantRefreshToken:
		if req.RefreshToken == "" {
			return &ConfigError{Field: "refreshToken", Message: "the refresh token is empty: authorize the connection again"}
		}
	case GrantPassword:
		if req.Username == "" {
			return missing("username", "username")
		}
		if req.Password == "" {
			return missing("password", "password")
		}
	case GrantAuthorizationCode:
		if req.Code == "" {
			return &ConfigError{Field: "code", Message: "the authorization code is empty"}
		}
		if req.RedirectURI == "" {
			return &ConfigError{Field: "redirectURI", Message: "the redirect URI is empty: send the one used to get the code"}
		}
	default:
		return &ConfigError{Field: "grant", Message: strconv.Quote(string(req.Grant)) + " is not a supported grant: use " +
			"client_credentials, refresh_token, authorization_code or password"}
	}
	return nil
}

// Verify implements Client.
func (c *client) Verify(ctx context.Context, req VerifyRequest) (*VerifyResult, error) {
	if strings.TrimSpace(req.Authorization) == "" {
		return nil, &ConfigError{Field: "authorization", Message: "the Authorization header value is empty"}
	}
	base, err := NormalizeURL(req.BaseURL)
	if err != nil {
		return nil, err
	}
	hc, err := c.httpClient(req.CACert)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	call := &callInfo{op: OpVerify}
	ctx = withCall(ctx, call)

	httpReq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+cleanPath(req.Path, DefaultVerifyPath), nil)
	if err != nil {
		return nil, &ConfigError{Field: "verify path", Message: "cannot build the request: check the path"}
	}
	httpReq.Header.Set("Authorization", req.Authorization)
	resp, err := hc.Do(httpReq)
	if err != nil {
		return nil, unwrapTransportError(call, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body) // already read through the size limit by guardedTransport
	if err != nil {
		return nil, unwrapTransportError(call, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, parseErrorBody(OpVerify, resp.StatusCode, body)
	}
	return &VerifyResult{MauticVersion: resp.Header.Get("Mautic-Version")}, nil
}

// cleanPath returns p (or def when p is empty) with a leading "/".
func cleanPath(p, def string) string {
	p = strings.TrimSpace(p)
	if p == "" {
		p = def
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// maxExpiresInSeconds caps expires_in (math.MaxInt32 seconds, about 68 years, as golang.org/x/oauth2 does).
const maxExpiresInSeconds = math.MaxInt32

// expiresIn reads expires_in (a JSON number, or a string holding one, as some servers send).
// It reports false for anything else; null gives 0 and true.
func expiresIn(raw json.RawMessage) (time.Duration, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(strings.TrimSpace(s))
	}
	seconds, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(seconds) || math.IsInf(seconds, 0) {
		return 0, false
	}
	switch {
	case seconds <= 0:
		return 0, true
	case seconds > maxExpiresInSeconds:
		seconds = maxExpiresInSeconds
	}
	return time.Duration(seconds * float64(time.Second)), true
}
