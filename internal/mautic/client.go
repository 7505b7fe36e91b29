// Package mautic is the client for Mautic's OAuth2 token endpoint and API. It sends token
// requests as form POSTs of its own (client id and secret in the body) and reads the answers
// leniently (expires_in as a number, a fractional number or a string), reads Mautic's and
// RFC 6749's error answers into *Error, refuses answers that are not JSON, plain http unless
// allowed, link-local, metadata and other denied targets (also behind a proxy), redirects and
// oversized bodies, limits requests in flight and their rate per host and keeps a circuit breaker
// per host, all without blocking (*HostBusyError), redacts the request's secrets from everything
// the server sends back that an error quotes, and classifies every error as transient,
// configuration or reauthorization.
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
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Client talks to one or more Mautic sites. Safe for concurrent use.
type Client interface {
	// Token obtains an access token with req.Grant. A 2xx answer to a refresh_token grant that
	// cannot be used is an *UnusableAnswerError (the server may have rotated the refresh token),
	// and so is one whose new refresh token fails CheckRefreshToken; IsAmbiguous tells the
	// failures that leave unknown whether the server acted on the request. The access token is
	// returned as the server sent it: check it with CheckAccessToken before using or publishing
	// it (after keeping a rotated refresh token). A busy host gives a *HostBusyError at once.
	Token(ctx context.Context, req TokenRequest) (*Token, error)
	// Verify calls an authenticated API path (default DefaultVerifyPath) with an Authorization
	// header value. A busy host gives a *HostBusyError at once.
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
	// AllowInsecureHTTP permits a plain http:// BaseURL, over which credentials and tokens travel
	// unencrypted. Without it, Token and Verify refuse such a URL with a *ConfigError.
	AllowInsecureHTTP bool
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
	// MauticVersion is the Mautic-Version response header when it looks like a version (see
	// mauticVersionPattern: at most 64 letters, digits and ".+-_") and holds no secret of the
	// request; "" when absent or not.
	MauticVersion string
}

// mauticVersionPattern is what a Mautic-Version header must look like to be kept.
var mauticVersionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+\-_]{0,63}$`)

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

// Resolver resolves host names to addresses; *net.Resolver implements it.
type Resolver interface {
	// LookupNetIP looks up host; network is "ip", "ip4" or "ip6".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure a Client. The zero value gives the defaults.
type Options struct {
	// Timeout bounds each request; default DefaultTimeout.
	Timeout time.Duration
	// MaxBodyBytes limits a response body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AllowLinkLocal allows every target: it turns off the DenyTargetCIDRs ranges and the cloud
	// metadata host names (metadata.google.internal, metadata.goog), which are refused by default.
	AllowLinkLocal bool
	// DenyTargetCIDRs are the address ranges refused as targets, also when embedded in an
	// IPv4-mapped or NAT64 address; nil means DefaultDenyTargetCIDRs(), an empty slice none (the
	// metadata host names stay refused). They are checked at dial time on the address dialled,
	// so that DNS tricks don't bypass it; when a proxy is used, the target's name is resolved
	// (Resolver) and refused before the proxy is contacted if any of its addresses is denied.
	DenyTargetCIDRs []netip.Prefix
	// Proxy picks the proxy for a request, as http.Transport.Proxy; default
	// http.ProxyFromEnvironment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).
	Proxy func(*http.Request) (*url.URL, error)
	// Resolver resolves a target's name when a proxy is used; default net.DefaultResolver.
	Resolver Resolver
	// MaxConcurrentPerHost is how many requests may be in flight to one host:port at once; a
	// request past it fails at once with a *HostBusyError. Default DefaultMaxConcurrentPerHost,
	// negative for no limit.
	MaxConcurrentPerHost int
	// RequestsPerSecond is the per-host token-bucket limit; a request past it fails at once with
	// a *HostBusyError whose RetryAfter is when the bucket has a token again. Default
	// DefaultRequestsPerSecond, negative for no limit.
	RequestsPerSecond float64
	// Burst is the per-host bucket size; default DefaultBurst.
	Burst int
	// CircuitFailureThreshold is how many timeouts or connection failures in a row open a host's
	// circuit: requests then fail at once with a *HostBusyError for CircuitCoolDown, then one
	// trial request goes through; its success closes the circuit, its failure opens it again for
	// twice as long, up to CircuitMaxCoolDown. Default DefaultCircuitFailureThreshold, negative
	// for no circuit breaker.
	CircuitFailureThreshold int
	// CircuitCoolDown is the first cool-down of an open circuit; default DefaultCircuitCoolDown.
	CircuitCoolDown time.Duration
	// CircuitMaxCoolDown caps the cool-down; default DefaultCircuitMaxCoolDown.
	CircuitMaxCoolDown time.Duration
	// UserAgent is sent with every request; default DefaultUserAgent.
	UserAgent string
	// Observe, when set, is called after every HTTP request, for metrics. statusCode is 0 on a
	// transport error; grant is empty for OpVerify.
	Observe func(op Op, grant Grant, statusCode int, d time.Duration)
	// Clock measures durations for Observe and drives the per-host rate limits, circuit
	// breakers and eviction of idle hosts; default the real clock.
	Clock clock.PassiveClock
}

// client is the Client implementation.
type client struct {
	opts  Options
	deny  []netip.Prefix
	hosts *hostGuard

	mu          sync.Mutex
	httpClients map[[32]byte]*http.Client
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
	if opts.MaxConcurrentPerHost == 0 {
		opts.MaxConcurrentPerHost = DefaultMaxConcurrentPerHost
	}
	if opts.CircuitFailureThreshold == 0 {
		opts.CircuitFailureThreshold = DefaultCircuitFailureThreshold
	}
	if opts.CircuitCoolDown <= 0 {
		opts.CircuitCoolDown = DefaultCircuitCoolDown
	}
	if opts.CircuitMaxCoolDown <= 0 {
		opts.CircuitMaxCoolDown = DefaultCircuitMaxCoolDown
	}
	if opts.Proxy == nil {
		opts.Proxy = http.ProxyFromEnvironment
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	deny := DefaultDenyTargetCIDRs()
	if opts.DenyTargetCIDRs != nil {
		deny = normalizePrefixes(opts.DenyTargetCIDRs)
	}
	opts.DenyTargetCIDRs = deny
	return &client{
		opts:        opts,
		deny:        deny,
		hosts:       newHostGuard(opts),
		httpClients: map[[32]byte]*http.Client{},
	}
}

// checkTarget refuses, before anything is sent or counted against the host, a plain http://
// base URL unless the site allows it, and a base URL whose host is a denied literal address or a
// metadata host name (guardedTransport checks again; names are checked when dialled or proxied).
func (c *client) checkTarget(base string, site Site) error {
	if strings.HasPrefix(base, "http://") && !site.AllowInsecureHTTP {
		return &ConfigError{Field: "url", Message: "the URL uses plain http://, which would send credentials and tokens unencrypted: " +
			"use an https:// URL, or set spec.allowInsecureHTTP: true if this is intended"}
	}
	if c.opts.AllowLinkLocal {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return urlError("cannot parse the URL")
	}
	return checkTargetHost(c.deny, u.Hostname())
}

// tokenSecrets returns a redactor for the secrets a token request sends.
func tokenSecrets(req TokenRequest) *redactor {
	return newRedactor(req.ClientSecret, req.Password, req.RefreshToken, req.Code)
}

// open normalises site's URL, checks that requests may go there, and returns the HTTP client that
// trusts its CA.
func (c *client) open(site Site) (string, *http.Client, error) {
	base, err := NormalizeURL(site.BaseURL)
	if err != nil {
		return "", nil, err
	}
	if err := c.checkTarget(base, site); err != nil {
		return "", nil, err
	}
	hc, err := c.httpClient(site.CACert)
	if err != nil {
		return "", nil, err
	}
	return base, hc, nil
}

// Token implements Client.
func (c *client) Token(ctx context.Context, req TokenRequest) (*Token, error) {
	if err := checkTokenRequest(req); err != nil {
		return nil, err
	}
	base, hc, err := c.open(req.Site)
	if err != nil {
		return nil, err
	}
	tokenURL := base + cleanPath(req.TokenPath, DefaultTokenPath)
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(tokenForm(req).Encode()))
	if err != nil {
		return nil, &ConfigError{Field: "token path", Message: "cannot build the request: check the path"}
	}
	httpReq.Header.Set("Content-Type", formMediaType)

	release, busy := c.hosts.acquire(hostKey(base))
	if busy != nil {
		return nil, busy
	}
	secrets := tokenSecrets(req)
	tok, err := c.token(ctx, hc, httpReq, req, secrets)
	release(requestOutcome(ctx, err))
	return tok, redactError(err, secrets)
}

// token sends a token request and reads its answer. When it fails, the answer's tokens join secrets.
func (c *client) token(ctx context.Context, hc *http.Client, httpReq *http.Request, req TokenRequest, secrets *redactor) (*Token, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	call := &callInfo{op: OpToken, grant: req.Grant, redactor: secrets}
	httpReq = httpReq.WithContext(withCall(ctx, call))
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
		secrets:     secrets,
	}
	if readErr != nil && !answer.mayHaveRotated() {
		answer.learnTokens()
		return nil, &requestError{
			message: fmt.Sprintf("%s request to %s failed: reading the answer: %s",
				OpToken.endpoint(), cleanTarget(httpReq.URL.String()), failureText(call, readErr)),
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
	base, hc, err := c.open(req.Site)
	if err != nil {
		return nil, err
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+cleanPath(req.Path, DefaultVerifyPath), nil)
	if err != nil {
		return nil, &ConfigError{Field: "verify path", Message: "cannot build the request: check the path"}
	}
	httpReq.Header.Set("Authorization", req.Authorization)

	release, busy := c.hosts.acquire(hostKey(base))
	if busy != nil {
		return nil, busy
	}
	secrets := newRedactor()
	secrets.addAuthorization(req.Authorization)
	result, err := c.verify(ctx, hc, httpReq, secrets)
	release(requestOutcome(ctx, err))
	return result, redactError(err, secrets)
}

// verify sends an API request and reads its answer.
func (c *client) verify(ctx context.Context, hc *http.Client, httpReq *http.Request, secrets *redactor) (*VerifyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	call := &callInfo{op: OpVerify, redactor: secrets}
	httpReq = httpReq.WithContext(withCall(ctx, call))
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
		return nil, parseRedactedErrorBody(OpVerify, resp.StatusCode, body, secrets)
	}
	return &VerifyResult{MauticVersion: mauticVersion(resp.Header.Get("Mautic-Version"), secrets)}, nil
}

// mauticVersion returns a Mautic-Version header value when it looks like a version and holds
// no secret of the request, else "".
func mauticVersion(header string, secrets *redactor) string {
	if !mauticVersionPattern.MatchString(header) || secrets.contains(header) {
		return ""
	}
	return header
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
