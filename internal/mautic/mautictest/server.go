// Package mautictest is a Mautic-compatible OAuth2 and API test server. It reproduces Mautic's wire
// behaviour (ApiBundle and its OAuth2 server, read from Mautic's source): the token endpoint with Mautic's error bodies and
// refresh-token rotation, /api/users/self with Bearer and Basic auth, the API and basic-auth
// switches, and the /index.php/... forms, with knobs for lifetimes, faults and counters.
// Unit tests, envtest controller tests, e2e tests and `make demo` use it, so it does not
// depend on the testing package.
package mautictest

import (
	"context"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"math"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of a new Server, matching Mautic's.
const (
	DefaultAccessTokenLifetime  = 60 * time.Minute
	DefaultRefreshTokenLifetime = 14 * 24 * time.Hour
	AuthorizationCodeLifetime   = 30 * time.Second
	DefaultMauticVersion        = "5.2.1"
	DefaultSlowDelay            = 5 * time.Second
	// DefaultUsername is the user that authorization codes and seeded refresh tokens belong to.
	DefaultUsername = "admin"
)

// Fault is a failure the server can inject into its token endpoint and API answers.
//
// Some faults answer before the request is looked at: the grant is not carried out, so no
// refresh token is rotated and no code is spent (FaultServerError, FaultUnavailable, FaultHTML,
// FaultMalformedJSON, and FaultSlow while the client waits no longer than the delay). The others
// carry out the grant first, exactly as without a fault, and then shape, hold or drop the answer:
// a refresh_token grant really rotates, deleting the presented refresh token and issuing a new
// one (FaultDropAfterRead, FaultFractionalExpiresIn, FaultUnusableAnswer,
// FaultUnusableAnswerNoToken, FaultSlowThenAnswer). ProcessesGrant tells which.
type Fault int

const (
	// FaultNone answers normally.
	FaultNone Fault = iota
	// FaultServerError answers 500 with a Mautic JSON error body, without carrying out the grant.
	FaultServerError
	// FaultUnavailable answers 503 with Retry-After: 1 and a JSON error body, without carrying out the grant.
	FaultUnavailable
	// FaultHTML answers 200 with an HTML login page, as a proxy or a wrong path does, without
	// carrying out the grant.
	FaultHTML
	// FaultSlow waits SlowDelay (or until the request or server ends), then answers normally: the
	// grant is carried out only after the delay, and not at all when the client gave up before.
	FaultSlow
	// FaultMalformedJSON answers 200 application/json with a truncated body, without carrying out the grant.
	FaultMalformedJSON
	// FaultDropAfterRead carries out the grant (a refresh token is rotated), then closes the
	// connection without answering. An API request is closed without an answer.
	FaultDropAfterRead
	// FaultFractionalExpiresIn carries out the grant and answers normally, but the access token
	// lives its lifetime in whole seconds plus half a second, and expires_in says so as a
	// fractional number (3600.5). Token endpoint only.
	FaultFractionalExpiresIn
	// FaultUnusableAnswer carries out the grant (a refresh token is rotated), then answers 200 with
	// the usual JSON body, new refresh token included, as Content-Type text/plain, which a client
	// must not take for a token answer. Token endpoint only; error answers are written normally.
	FaultUnusableAnswer
	// FaultUnusableAnswerNoToken carries out the grant (a refresh token is rotated), then answers
	// 200 application/json {"unexpected":true}: the new refresh token is lost to the client.
	// Token endpoint only; error answers are written normally.
	FaultUnusableAnswerNoToken
	// FaultSlowThenAnswer carries out the grant at once (a refresh token is rotated), then holds
	// the answer SlowDelay before writing it. A client that gives up first never learns the new
	// refresh token; if the server is closed meanwhile, the connection is closed without an
	// answer. An API request is answered after the delay.
	FaultSlowThenAnswer
)

// String returns the fault's name.
func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "None"
	case FaultServerError:
		return "ServerError"
	case FaultUnavailable:
		return "Unavailable"
	case FaultHTML:
		return "HTML"
	case FaultSlow:
		return "Slow"
	case FaultMalformedJSON:
		return "MalformedJSON"
	case FaultDropAfterRead:
		return "DropAfterRead"
	case FaultFractionalExpiresIn:
		return "FractionalExpiresIn"
	case FaultUnusableAnswer:
		return "UnusableAnswer"
	case FaultUnusableAnswerNoToken:
		return "UnusableAnswerNoToken"
	case FaultSlowThenAnswer:
		return "SlowThenAnswer"
	default:
		return fmt.Sprintf("Fault(%d)", int(f))
	}
}

// ProcessesGrant reports whether the token endpoint carries out the grant under f (checking the
// credentials, spending a refresh token or authorization code, issuing tokens) before the fault
// shapes, holds or drops the answer. It is true for FaultNone and the faults that rotate a
// refresh token, false for the faults that answer instead of carrying out the grant, and false
// for FaultSlow, which carries it out only when the client still waits after the delay.
func (f Fault) ProcessesGrant() bool {
	switch f {
	case FaultNone, FaultDropAfterRead, FaultFractionalExpiresIn, FaultUnusableAnswer, FaultUnusableAnswerNoToken, FaultSlowThenAnswer:
		return true
	default:
		return false
	}
}

// tokenOnly reports whether f applies to the token endpoint only: API requests neither see it
// nor count it down.
func (f Fault) tokenOnly() bool {
	return f == FaultFractionalExpiresIn || f == FaultUnusableAnswer || f == FaultUnusableAnswerNoToken
}

// ClientApp is an API client registered in Mautic (Settings > API Credentials, OAuth2).
type ClientApp struct {
	// ID is the public client id, "<number>_<base36>".
	ID string
	// Secret is the client secret.
	Secret string
	// Name is the client's display name.
	Name string
	// AllowClientCredentials lets the client use the client_credentials grant (admin-created clients).
	AllowClientCredentials bool
	// RedirectURIs are the registered redirect URIs for the authorization-code flow.
	RedirectURIs []string
}

// Server is a Mautic-compatible OAuth2 and API server on an httptest.Server. Safe for concurrent use.
type Server struct {
	srv       *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once

	mu                   sync.Mutex
	clock                clock.PassiveClock
	clients              map[string]ClientApp
	users                map[string]*user
	accessTokens         map[string]*issued
	refreshTokens        map[string]*issued
	rotatedRefreshTokens map[string]bool
	authCodes            map[string]*authCode
	accessLifetime       time.Duration
	refreshLifetime      time.Duration
	apiEnabled           bool
	basicAuthEnabled     bool
	rfc6749Errors        bool
	echoRequests         bool
	generic              *GenericOAuth2
	authorizeDenied      bool
	mauticVersion        string
	fault                Fault
	faultRemaining       int
	randomFaults         []Fault
	randomProbability    float64
	random               *mathrand.Rand
	slowDelay            time.Duration
	nextClientNumber     int
	nextUserID           int

	tokenRequests         int
	tokenRequestsByGrant  map[string]int
	tokenRequestsByClient map[string]int
	apiRequests           int
	authorizeRequests     int
	issuedAccessTokens    int
	issuedRefreshTokens   int
	reusedRefreshTokens   int
}

// issued is an access or refresh token the server handed out.
type issued struct {
	clientID  string
	username  string // "" for client-credentials tokens
	expiresAt time.Time
}

// authCode is an authorization code waiting to be exchanged.
type authCode struct {
	clientID    string
	redirectURI string
	username    string
	expiresAt   time.Time
}

// user is a Mautic user, for Basic auth and /api/users/self.
type user struct {
	id       int
	username string
	password string
}

// locked runs set while holding the server's lock: the setters' one way to change a setting.
func (s *Server) locked(set func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set()
}

// NewServer returns a started plain-HTTP server.
func NewServer() *Server {
	s := NewUnstartedServer()
	s.Start()
	return s
}

// NewServerFor returns a started plain-HTTP server that is closed when t's test ends.
func NewServerFor(t interface{ Cleanup(func()) }) *Server {
	s := NewServer()
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer returns a started HTTPS server; CACertPEM returns the certificate to trust.
func NewTLSServer() *Server {
	s := NewUnstartedServer()
	s.StartTLS()
	return s
}

// NewUnstartedServer returns a server that is not listening yet: call Start, StartTLS or StartOn.
func NewUnstartedServer() *Server {
	s := &Server{
		closing:               make(chan struct{}),
		clock:                 clock.RealClock{},
		clients:               map[string]ClientApp{},
		users:                 map[string]*user{},
		accessTokens:          map[string]*issued{},
		refreshTokens:         map[string]*issued{},
		rotatedRefreshTokens:  map[string]bool{},
		authCodes:             map[string]*authCode{},
		accessLifetime:        DefaultAccessTokenLifetime,
		refreshLifetime:       DefaultRefreshTokenLifetime,
		apiEnabled:            true,
		mauticVersion:         DefaultMauticVersion,
		slowDelay:             DefaultSlowDelay,
		nextClientNumber:      1,
		nextUserID:            1,
		tokenRequestsByGrant:  map[string]int{},
		tokenRequestsByClient: map[string]int{},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// Start starts serving plain HTTP on a random loopback port.
func (s *Server) Start() { s.srv.Start() }

// StartTLS starts serving HTTPS on a random loopback port.
func (s *Server) StartTLS() { s.srv.StartTLS() }

// StartOn starts serving plain HTTP on addr (e.g. "127.0.0.1:8085"), for the demo.
func (s *Server) StartOn(addr string) error {
	if err := s.listenOn(addr); err != nil {
		return err
	}
	s.srv.Start()
	return nil
}

// StartTLSOn starts serving HTTPS on addr.
func (s *Server) StartTLSOn(addr string) error {
	if err := s.listenOn(addr); err != nil {
		return err
	}
	s.srv.StartTLS()
	return nil
}

// listenOn replaces the random-port listener with one on addr.
func (s *Server) listenOn(addr string) error {
	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	_ = s.srv.Listener.Close()
	s.srv.Listener = listener
	return nil
}

// URL returns the site URL, e.g. http://127.0.0.1:34567 (no trailing slash).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, ending slow answers at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srv.Close()
}

// CACertPEM returns the HTTPS server's certificate as PEM, or nil for a plain-HTTP server.
func (s *Server) CACertPEM() []byte {
	cert := s.srv.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// NewClient registers a client with a fresh id ("<number>_<base36>") and random secret, and returns it.
func (s *Server) NewClient(name string, allowClientCredentials bool) ClientApp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addClientLocked(ClientApp{Name: name, AllowClientCredentials: allowClientCredentials})
}

// AddClient registers c; an empty ID or Secret is generated.
func (s *Server) AddClient(c ClientApp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addClientLocked(c)
}

// addClientLocked registers c, filling an empty id or secret, and returns a copy. s.mu must be held.
func (s *Server) addClientLocked(c ClientApp) ClientApp {
	if c.ID == "" {
		c.ID = fmt.Sprintf("%d_%s", s.nextClientNumber, randomBase36(20))
		s.nextClientNumber++
	}
	if c.Secret == "" {
		c.Secret = randomBase36(32)
	}
	c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	s.clients[c.ID] = c
	c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	return c
}

// SetClientSecret changes a client's secret, as regenerating it in Mautic does.
func (s *Server) SetClientSecret(id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[id]; ok {
		c.Secret = secret
		s.clients[id] = c
	}
}

// RemoveClient deletes a client with its tokens and codes.
func (s *Server) RemoveClient(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, id)
	for _, tokens := range []map[string]*issued{s.accessTokens, s.refreshTokens} {
		for token, record := range tokens {
			if record.clientID == id {
				delete(tokens, token)
			}
		}
	}
	for code, record := range s.authCodes {
		if record.clientID == id {
			delete(s.authCodes, code)
		}
	}
}

// AddUser adds a Mautic user, for Basic auth and for the user /api/users/self answers.
func (s *Server) AddUser(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[username]; ok {
		u.password = password
		return
	}
	s.users[username] = &user{id: s.nextUserID, username: username, password: password}
	s.nextUserID++
}

// SetAccessTokenLifetime sets the lifetime of access tokens issued from now on (default 60 minutes).
func (s *Server) SetAccessTokenLifetime(d time.Duration) {
	s.locked(func() { s.accessLifetime = d })
}

// SetRefreshTokenLifetime sets the lifetime of refresh tokens issued from now on (default 14 days).
func (s *Server) SetRefreshTokenLifetime(d time.Duration) {
	s.locked(func() { s.refreshLifetime = d })
}

// SetAPIEnabled turns Mautic's API on or off (default on); off answers 403 api_disabled on /oauth and /api.
func (s *Server) SetAPIEnabled(enabled bool) {
	s.locked(func() { s.apiEnabled = enabled })
}

// SetBasicAuthEnabled turns Mautic's HTTP basic auth on or off (default off). Off, any Basic
// Authorization header on /api or the token endpoint answers 403.
func (s *Server) SetBasicAuthEnabled(enabled bool) {
	s.locked(func() { s.basicAuthEnabled = enabled })
}

// SetRFC6749Errors makes error answers RFC 6749's {"error","error_description"} (invalid_client
// with 401) instead of Mautic's {"errors":[...]}, to play a non-Mautic OAuth2 server.
func (s *Server) SetRFC6749Errors(enabled bool) {
	s.locked(func() { s.rfc6749Errors = enabled })
}

// SetEchoRequests makes every error answer quote the request, as a careless or hostile server
// might: the message (or error_description) gets " (request: ...)" appended, holding the form and
// query (encoded, and each value decoded), the Authorization header and decoded Basic
// credentials. Off by default. For tests that check that a client keeps secrets out of what it
// shows.
func (s *Server) SetEchoRequests(on bool) {
	s.locked(func() { s.echoRequests = on })
}

// GenericOAuth2 describes a standard OAuth2 server that is not Mautic (1CRM, say): its token
// endpoint path, the scopes it grants, and the resource-owner password grant.
type GenericOAuth2 struct {
	// TokenPath replaces /oauth/v2/token, which then answers 404.
	TokenPath string
	// Scopes are the scopes a client may request; the answer echoes the requested ones.
	Scopes []string
}

// SetGenericOAuth2 makes the server play a standard OAuth2 server: RFC 6749 error bodies, the token
// endpoint at g.TokenPath, the password grant for users added with AddUser, and g.Scopes.
// nil goes back to Mautic's behaviour.
func (s *Server) SetGenericOAuth2(g *GenericOAuth2) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generic = g
	s.rfc6749Errors = g != nil
}

// SetAuthorizeDenied makes /oauth/v2/authorize act as if the user denied consent: 302 with no
// Location header, as Mautic answers. By default the authorize endpoint approves at once for DefaultUsername.
func (s *Server) SetAuthorizeDenied(denied bool) {
	s.locked(func() { s.authorizeDenied = denied })
}

// SetMauticVersion sets the Mautic-Version header of successful API answers (default "5.2.1").
func (s *Server) SetMauticVersion(v string) {
	s.locked(func() { s.mauticVersion = v })
}

// SetClock sets the clock that token and code expiry use (default the real clock).
func (s *Server) SetClock(c clock.PassiveClock) {
	s.locked(func() { s.clock = c })
}

// InjectFault makes the next n requests to the token endpoint and the API answer with f;
// n < 0 means until ClearFaults, n == 0 clears. Token-only faults (FaultFractionalExpiresIn,
// FaultUnusableAnswer, FaultUnusableAnswerNoToken) are neither applied to nor counted down by API
// requests. It replaces any faults injected before, random ones included.
func (s *Server) InjectFault(f Fault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearFaultsLocked()
	s.fault, s.faultRemaining = f, n
	if n == 0 {
		s.fault = FaultNone
	}
}

// InjectRandomFaults makes each later token request, with the given probability, answer with
// one of faults picked at random, until ClearFaults or InjectFault. The draws come from a
// generator seeded with seed, so the same sequence of token requests meets the same faults
// (concurrent requests take the draws in the order they arrive). API requests are not affected.
// It replaces any faults injected before. A probability outside [0, 1] is clamped.
func (s *Server) InjectRandomFaults(faults []Fault, probability float64, seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearFaultsLocked()
	switch {
	case math.IsNaN(probability) || probability <= 0 || len(faults) == 0:
		return
	case probability > 1:
		probability = 1
	}
	s.randomFaults = append([]Fault(nil), faults...)
	s.randomProbability = probability
	s.random = mathrand.New(mathrand.NewPCG(uint64(seed), 0)) //nolint:gosec // a reproducible fault schedule, not a secret
}

// ClearFaults stops injecting faults, fixed and random.
func (s *Server) ClearFaults() {
	s.InjectFault(FaultNone, 0)
}

// clearFaultsLocked forgets every injected fault. s.mu must be held.
func (s *Server) clearFaultsLocked() {
	s.fault, s.faultRemaining = FaultNone, 0
	s.randomFaults, s.randomProbability, s.random = nil, 0, nil
}

// SetSlowDelay sets how long FaultSlow waits (default 5s).
func (s *Server) SetSlowDelay(d time.Duration) {
	s.locked(func() { s.slowDelay = d })
}

// IssueRefreshToken seeds a refresh token for clientID (belonging to DefaultUsername), as an
// earlier authorization-code flow would have.
func (s *Server) IssueRefreshToken(clientID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(s.refreshTokens, clientID, DefaultUsername, s.refreshLifetime)
}

// IssueAuthorizationCode seeds an authorization code for clientID and redirectURI (belonging to
// DefaultUsername); it works once and lives AuthorizationCodeLifetime.
func (s *Server) IssueAuthorizationCode(clientID, redirectURI string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueCodeLocked(clientID, redirectURI, DefaultUsername)
}

// RevokeRefreshTokens deletes every refresh token of clientID, as revoking the client's access does.
func (s *Server) RevokeRefreshTokens(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for token, record := range s.refreshTokens {
		if record.clientID == clientID {
			delete(s.refreshTokens, token)
		}
	}
}

// TokenRequests returns the number of token-endpoint requests, including failures and faults.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// TokenRequestsByGrant returns the number of token-endpoint requests with grant_type grant.
func (s *Server) TokenRequestsByGrant(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequestsByGrant[grant]
}

// TokenRequestsByClient returns the number of token-endpoint requests naming clientID.
func (s *Server) TokenRequestsByClient(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequestsByClient[clientID]
}

// APIRequests returns the number of requests to /api paths.
func (s *Server) APIRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiRequests
}

// AuthorizeRequests returns the number of requests to /oauth/v2/authorize.
func (s *Server) AuthorizeRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authorizeRequests
}

// IssuedAccessTokens returns the number of access tokens issued.
func (s *Server) IssuedAccessTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuedAccessTokens
}

// AccessTokenValid reports whether token was issued by this server and has not expired.
func (s *Server) AccessTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	record, ok := s.accessTokens[token]
	return ok && s.clock.Now().Before(record.expiresAt)
}

// RefreshTokenValid reports whether token is a refresh token the server would accept now.
func (s *Server) RefreshTokenValid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	record, ok := s.refreshTokens[token]
	return ok && s.clock.Now().Before(record.expiresAt)
}

// RefreshTokensIssued returns the number of refresh tokens the token endpoint issued (by
// refresh_token, authorization_code and password grants, also when a fault then spoilt or
// dropped the answer). Tokens seeded with IssueRefreshToken are not counted.
func (s *Server) RefreshTokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuedRefreshTokens
}

// ReusedRefreshTokens returns the number of refresh_token grant requests that presented a
// refresh token the server had already rotated (spent), whoever the client and however the
// request was then answered (faults included).
func (s *Server) ReusedRefreshTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reusedRefreshTokens
}

// ResetCounters sets every request counter back to zero.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenRequests, s.apiRequests, s.authorizeRequests = 0, 0, 0
	s.issuedAccessTokens, s.issuedRefreshTokens, s.reusedRefreshTokens = 0, 0, 0
	s.tokenRequestsByGrant = map[string]int{}
	s.tokenRequestsByClient = map[string]int{}
}

// issueLocked stores a new random token in tokens and returns it. s.mu must be held.
func (s *Server) issueLocked(tokens map[string]*issued, clientID, username string, lifetime time.Duration) string {
	token := randomBase36(32)
	tokens[token] = &issued{clientID: clientID, username: username, expiresAt: s.clock.Now().Add(lifetime)}
	return token
}

// issueCodeLocked stores a new authorization code and returns it. s.mu must be held.
func (s *Server) issueCodeLocked(clientID, redirectURI, username string) string {
	code := randomBase36(32)
	s.authCodes[code] = &authCode{
		clientID:    clientID,
		redirectURI: redirectURI,
		username:    username,
		expiresAt:   s.clock.Now().Add(AuthorizationCodeLifetime),
	}
	return code
}

// randomBase36 returns n random bytes from crypto/rand written in base 36, like Mautic's ids and tokens.
func randomBase36(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the program instead)
	b[0] |= 0x80        // keep the length stable
	return new(big.Int).SetBytes(b).Text(36)
}
