package mautictest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mautic's English messages (the real ones are translated; clients must not match on them).
const (
	MessageInvalidGrantType       = "Invalid grant_type parameter or parameter missing"
	MessageNoClientID             = "Client id was not found in the headers or body"
	MessageInvalidClient          = "The client credentials are invalid"
	MessageUnauthorizedClient     = "The grant type is unauthorized for this client_id"
	MessageInvalidRefreshToken    = "Invalid refresh token"
	MessageInvalidUserCredentials = "Invalid username and password combination"
	MessageExpiredRefreshToken    = "Refresh token has expired"
	MessageNoRefreshToken         = `No "refresh_token" parameter found`
	MessageNoCode                 = `Missing parameter. "code" is required`
	MessageNoRedirectURI          = "The redirect URI parameter is required."
	MessageInvalidCode            = "Code doesn't exist or is invalid for the client"
	MessageRedirectMismatch       = "The redirect URI is missing or do not match"
	MessageExpiredCode            = "The authorization code has expired"
	MessageUnsupportedScope       = "An unsupported scope was requested."
	MessageAPIDisabled            = "API disabled. You need to enable the API in the API settings of Mautic's Configuration."
	MessageBasicAuthDisabled      = "Basic Auth disabled. You need to enable HTTP basic auth in the API settings page of your Mautic account."
	MessageBasicAuthInvalid       = "Authorization denied, invalid credentials."
	MessageAccessDenied           = "API authorization denied."
	MessageInvalidAccessToken     = "The access token provided is invalid."
	MessageExpiredAccessToken     = "The access token provided has expired."
	MessageTwoTokenMethods        = "Only one method may be used to authenticate at a time (Auth header, GET or POST)."
	MessageInternalServerError    = "Looks like I encountered an error (error #500). If I do it again, please report me to the system administrator!"
	MessageServiceUnavailable     = "Service Unavailable"
	MessageAuthorizeNoClientID    = "No client id supplied"
	MessageAuthorizeUnknown       = "Unknown client"
	MessageAuthorizeNoRedirect    = "No redirect URL was supplied or registered."
	MessageAuthorizeManyRedirect  = "No redirect URL was supplied and more than one is registered."
	MessageAuthorizeMismatch      = "The redirect URI provided does not match registered URI(s)."
)

// grantTypePattern is oauth2-php's filter for grant_type.
var grantTypePattern = regexp.MustCompile(`^(authorization_code|token|password|client_credentials|refresh_token|http.*|urn:.*)$`)

// bearerPattern is oauth2-php's Bearer header match: case-sensitive and not anchored.
var bearerPattern = regexp.MustCompile(`Bearer\s(\S+)`)

// loginPage is what Mautic (or a proxy) shows instead of JSON.
const loginPage = `<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>Mautic</title></head>
<body><form class="form-group login-form" name="login" role="form" action="/s/login_check" method="post">
<input type="text" id="username" name="_username" placeholder="username or email">
<input type="password" id="password" name="_password" placeholder="password">
<button type="submit">login</button></form></body></html>
`

// maxFormBytes bounds a token request body.
const maxFormBytes = 64 << 10

// grantRefreshToken is the grant_type of a refresh.
const grantRefreshToken = "refresh_token"

// serveHTTP routes a request, accepting the /index.php/... forms of every path.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p, prefix := r.URL.Path, ""
	if p == "/index.php" || strings.HasPrefix(p, "/index.php/") {
		p, prefix = strings.TrimPrefix(p, "/index.php"), "/index.php"
	}
	s.mu.Lock()
	generic := s.generic
	s.mu.Unlock()
	switch {
	case generic != nil && p == generic.TokenPath:
		s.serveToken(w, r)
	case p == "/oauth/v2/token" && generic == nil:
		s.serveToken(w, r)
	case p == "/oauth/v2/authorize":
		s.serveAuthorize(w, r)
	case p == "/api/users/self":
		s.serveUsersSelf(w, r)
	case p == "/api" || strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/oauth/"):
		s.serveNotFound(w, r, p)
	case p == "/s/login":
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = w.Write([]byte(loginPage))
	default:
		// Mautic sends every other path to its login page.
		http.Redirect(w, r, prefix+"/s/login", http.StatusFound)
	}
}

// apiError is one entry of Mautic's {"errors":[...]} body.
type apiError struct {
	Message string  `json:"message"`
	Code    int     `json:"code"`
	Type    *string `json:"type"`
}

// writeError writes an error answer in Mautic's form, or RFC 6749's when that mode is on, quoting
// r when SetEchoRequests is on. errorType "" is written as null. s.mu must not be held.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, errorType, message string) {
	s.mu.Lock()
	rfc, echo := s.rfc6749Errors, s.echoRequests
	s.mu.Unlock()
	if echo {
		message += " (request: " + echoRequest(r) + ")"
	}
	if rfc && errorType != "" {
		if errorType == "invalid_client" {
			status = http.StatusUnauthorized
		}
		writeJSON(w, status, map[string]string{"error": errorType, "error_description": message})
		return
	}
	entry := apiError{Message: message, Code: status}
	if errorType != "" {
		entry.Type = &errorType
	}
	writeJSON(w, status, map[string][]apiError{"errors": {entry}})
}

// echoRequest quotes what a careless server might echo of r: its parsed form and query, encoded
// and as decoded values, the Authorization header, and decoded Basic credentials.
func echoRequest(r *http.Request) string {
	params := url.Values{}
	for _, values := range []url.Values{r.URL.Query(), r.PostForm} {
		for key, list := range values {
			params[key] = append(params[key], list...)
		}
	}
	parts := []string{params.Encode()}
	keys := make([]string, 0, len(params))
	for key := range params {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		parts = append(parts, key+"="+strings.Join(params[key], ","))
	}
	if authorization := r.Header.Get("Authorization"); authorization != "" {
		parts = append(parts, "Authorization: "+authorization)
	}
	if username, password, ok := r.BasicAuth(); ok {
		parts = append(parts, username+":"+password)
	}
	return strings.Join(parts, " ")
}

// writeJSON writes v as a JSON answer that must not be cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// takeFault returns the fault for this request (token: a token-endpoint request) and the slow
// delay, counting a fixed fault down or drawing a random one.
func (s *Server) takeFault(token bool) (Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault != FaultNone && s.faultRemaining != 0 && (token || !s.fault.tokenOnly()) {
		fault := s.fault
		if s.faultRemaining > 0 {
			s.faultRemaining--
			if s.faultRemaining == 0 {
				s.fault = FaultNone
			}
		}
		return fault, s.slowDelay
	}
	if token && s.random != nil && s.random.Float64() < s.randomProbability {
		return s.randomFaults[s.random.IntN(len(s.randomFaults))], s.slowDelay
	}
	return FaultNone, 0
}

// applyAPIFault applies the injected fault to an API request and reports whether the request is
// done. An API request has nothing to carry out, so FaultDropAfterRead just closes the
// connection and FaultSlowThenAnswer waits like FaultSlow.
func (s *Server) applyAPIFault(w http.ResponseWriter, r *http.Request) bool {
	fault, slowDelay := s.takeFault(false)
	switch fault {
	case FaultDropAfterRead:
		dropConnection(w)
		return true
	case FaultSlowThenAnswer:
		fault = FaultSlow
	}
	return s.answerFault(w, r, fault, slowDelay)
}

// answerFault answers with a fault that stands in for the real answer (FaultServerError,
// FaultUnavailable, FaultHTML, FaultMalformedJSON) or waits for FaultSlow, and reports whether
// the request is done. Other faults are left to the caller.
func (s *Server) answerFault(w http.ResponseWriter, r *http.Request, fault Fault, slowDelay time.Duration) bool {
	switch fault {
	case FaultServerError:
		s.writeError(w, r, http.StatusInternalServerError, "", MessageInternalServerError)
	case FaultUnavailable:
		w.Header().Set("Retry-After", "1")
		s.writeError(w, r, http.StatusServiceUnavailable, "", MessageServiceUnavailable)
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(loginPage))
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"access_token":"YjM0NWUx","expires_in":36`))
	case FaultSlow:
		return s.wait(r, slowDelay) != waitElapsed
	default:
		return false
	}
	return true
}

// waitEnd is what ended a wait.
type waitEnd int

const (
	// waitElapsed: the delay passed.
	waitElapsed waitEnd = iota
	// waitRequestEnded: the client gave up (the request's context ended).
	waitRequestEnded
	// waitServerClosing: the server is being closed.
	waitServerClosing
)

// wait waits d, or until the request or the server ends, and says which came first.
func (s *Server) wait(r *http.Request, d time.Duration) waitEnd {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return waitElapsed
	case <-r.Context().Done():
		return waitRequestEnded
	case <-s.closing:
		return waitServerClosing
	}
}

// dropConnection closes the request's connection without writing an answer: it hijacks the
// HTTP/1 connection and closes it, or aborts the HTTP/2 stream.
func dropConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler) // net/http aborts the answer without logging
}

// hasBasicAuth reports whether the request carries an Authorization: Basic header.
func hasBasicAuth(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Basic")
}

// guardAPI applies Mautic's API switches (API enabled, basic auth enabled) to /oauth and /api
// requests and reports whether the request was answered.
func (s *Server) guardAPI(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	apiEnabled, basicEnabled := s.apiEnabled, s.basicAuthEnabled
	s.mu.Unlock()
	if !apiEnabled {
		s.writeError(w, r, http.StatusForbidden, "api_disabled", MessageAPIDisabled)
		return true
	}
	if hasBasicAuth(r) && !basicEnabled {
		s.writeError(w, r, http.StatusForbidden, "access_denied", MessageBasicAuthDisabled)
		return true
	}
	return false
}

// tokenAnswer is the token endpoint's success body, fields in Mautic's order.
type tokenAnswer struct {
	AccessToken  string      `json:"access_token"`
	ExpiresIn    json.Number `json:"expires_in"`
	TokenType    string      `json:"token_type"`
	Scope        *string     `json:"scope"`
	RefreshToken string      `json:"refresh_token,omitempty"`
}

// oauthFailure is an error answer decided while holding s.mu, written after releasing it.
type oauthFailure struct {
	status    int
	errorType string
	message   string
}

// tokenCall is one token-endpoint request as the grant sees it.
type tokenCall struct {
	// params are the request's parameters (query or form).
	params url.Values
	// fractionalExpiresIn gives the access token half a second more and says so in expires_in (FaultFractionalExpiresIn).
	fractionalExpiresIn bool
	// reuseCounted is set when the request was already counted in ReusedRefreshTokens.
	reuseCounted bool
}

// serveToken is /oauth/v2/token: GET query or POST form, client credentials in the body
// (or a Basic header when basic auth is on).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			params = url.Values{}
		} else {
			params = r.PostForm
		}
	default:
		params = url.Values{}
	}
	clientID := params.Get("client_id")
	if basicUser, _, ok := r.BasicAuth(); ok && basicUser != "" {
		clientID = basicUser
	}
	call := &tokenCall{params: params}
	s.mu.Lock()
	s.tokenRequests++
	s.tokenRequestsByGrant[params.Get("grant_type")]++
	s.tokenRequestsByClient[clientID]++
	if params.Get("grant_type") == grantRefreshToken && s.rotatedRefreshTokens[params.Get("refresh_token")] {
		s.reusedRefreshTokens++
		call.reuseCounted = true
	}
	s.mu.Unlock()

	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.writeError(w, r, http.StatusMethodNotAllowed, "", "No route found: Method Not Allowed (Allow: GET, POST)")
		return
	}
	fault, slowDelay := s.takeFault(true)
	if s.answerFault(w, r, fault, slowDelay) {
		return
	}
	// The grant is carried out in full, then the fault shapes, holds or drops the answer.
	call.fractionalExpiresIn = fault == FaultFractionalExpiresIn
	recorded := httptest.NewRecorder()
	issued := s.respondToken(recorded, r, call)
	switch fault {
	case FaultDropAfterRead:
		dropConnection(w)
		return
	case FaultSlowThenAnswer:
		switch s.wait(r, slowDelay) {
		case waitRequestEnded:
			return
		case waitServerClosing:
			dropConnection(w)
			return
		}
	case FaultUnusableAnswer:
		if issued {
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(recorded.Body.Bytes())
			return
		}
	case FaultUnusableAnswerNoToken:
		if issued {
			writeJSON(w, http.StatusOK, map[string]bool{"unexpected": true})
			return
		}
	}
	copyAnswer(w, recorded)
}

// respondToken applies the API switches and carries out the grant, writing the answer to w, and
// reports whether tokens were issued.
func (s *Server) respondToken(w http.ResponseWriter, r *http.Request, call *tokenCall) bool {
	if s.guardAPI(w, r) {
		return false
	}
	answer, failure := s.grant(r, call)
	if failure != nil {
		s.writeError(w, r, failure.status, failure.errorType, failure.message)
		return false
	}
	writeJSON(w, http.StatusOK, answer)
	return true
}

// copyAnswer writes a recorded answer to w.
func copyAnswer(w http.ResponseWriter, recorded *httptest.ResponseRecorder) {
	for key, values := range recorded.Header() {
		w.Header()[key] = values
	}
	w.WriteHeader(recorded.Code)
	_, _ = w.Write(recorded.Body.Bytes())
}

// grant runs oauth2-php's grantAccessToken checks in its order and issues the tokens.
func (s *Server) grant(r *http.Request, call *tokenCall) (*tokenAnswer, *oauthFailure) {
	params := call.params
	grantType := params.Get("grant_type")
	if !grantTypePattern.MatchString(grantType) {
		return nil, badRequest("invalid_request", MessageInvalidGrantType)
	}
	clientID, secret := params.Get("client_id"), params.Get("client_secret")
	if basicUser, basicPassword, ok := r.BasicAuth(); ok && basicUser != "" {
		clientID, secret = basicUser, basicPassword
	} else if clientID == "" {
		return nil, badRequest("invalid_client", MessageNoClientID)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	client, ok := s.clients[clientID]
	if !ok || subtle.ConstantTimeCompare([]byte(client.Secret), []byte(secret)) != 1 {
		return nil, badRequest("invalid_client", MessageInvalidClient)
	}
	allowed := grantType == "authorization_code" || grantType == grantRefreshToken ||
		grantType == "client_credentials" && client.AllowClientCredentials ||
		grantType == "password" && s.generic != nil
	if !allowed {
		return nil, badRequest("unauthorized_client", MessageUnauthorizedClient)
	}
	username, consume, failure := s.checkGrantLocked(grantType, clientID, call, s.clock.Now())
	if failure != nil {
		return nil, failure
	}
	var grantedScope *string
	if requested := params.Get("scope"); requested != "" {
		// Mautic configures no supported scopes, so oauth2-php refuses any requested scope; a generic
		// server grants the scopes it knows.
		if s.generic == nil || !allScopesKnown(requested, s.generic.Scopes) {
			return nil, badRequest("invalid_scope", MessageUnsupportedScope)
		}
		grantedScope = &requested
	}
	if consume != nil {
		consume()
	}
	seconds := int64(s.accessLifetime / time.Second)
	lifetime, expiresIn := s.accessLifetime, json.Number(strconv.FormatInt(seconds, 10))
	if call.fractionalExpiresIn {
		lifetime = time.Duration(seconds)*time.Second + 500*time.Millisecond
		expiresIn = json.Number(strconv.FormatInt(seconds, 10) + ".5")
	}
	answer := &tokenAnswer{
		AccessToken: s.issueLocked(s.accessTokens, clientID, username, lifetime),
		ExpiresIn:   expiresIn,
		TokenType:   "bearer",
		Scope:       grantedScope,
	}
	s.issuedAccessTokens++
	if grantType != "client_credentials" {
		answer.RefreshToken = s.issueLocked(s.refreshTokens, clientID, username, s.refreshLifetime)
		s.issuedRefreshTokens++
	}
	return answer, nil
}

// badRequest is an HTTP 400 OAuth2 error answer.
func badRequest(errorType, message string) *oauthFailure {
	return &oauthFailure{status: http.StatusBadRequest, errorType: errorType, message: message}
}

// checkGrantLocked runs the checks of grantType's credential (code, refresh token or user
// password) at now, and returns the user the tokens are for and, for a credential used once, the
// function that spends it when the tokens are issued. The client credentials grant has no such
// credential. s.mu is held.
func (s *Server) checkGrantLocked(grantType, clientID string, call *tokenCall, now time.Time) (string, func(), *oauthFailure) {
	switch grantType {
	case "authorization_code":
		return s.checkAuthorizationCodeLocked(clientID, call.params, now)
	case grantRefreshToken:
		return s.checkRefreshTokenLocked(clientID, call, now)
	case "password":
		return s.checkPasswordLocked(call.params)
	}
	return "", nil, nil
}

// checkAuthorizationCodeLocked checks an authorization_code grant's code and redirect URI.
func (s *Server) checkAuthorizationCodeLocked(clientID string, params url.Values, now time.Time) (string, func(), *oauthFailure) {
	code := params.Get("code")
	if code == "" {
		return "", nil, badRequest("invalid_request", MessageNoCode)
	}
	redirectURI := params.Get("redirect_uri")
	if redirectURI == "" {
		return "", nil, badRequest("invalid_request", MessageNoRedirectURI)
	}
	record, ok := s.authCodes[code]
	if !ok || record.clientID != clientID {
		return "", nil, badRequest("invalid_grant", MessageInvalidCode)
	}
	if !redirectURIMatches(redirectURI, record.redirectURI) {
		return "", nil, badRequest("redirect_uri_mismatch", MessageRedirectMismatch)
	}
	if !now.Before(record.expiresAt) {
		return "", nil, badRequest("invalid_grant", MessageExpiredCode)
	}
	return record.username, func() { delete(s.authCodes, code) }, nil
}

// checkRefreshTokenLocked checks a refresh_token grant's refresh token, counting the reuse of a
// rotated one (rotated by a concurrent request since this one arrived, when not counted then).
func (s *Server) checkRefreshTokenLocked(clientID string, call *tokenCall, now time.Time) (string, func(), *oauthFailure) {
	refreshToken := call.params.Get("refresh_token")
	if refreshToken == "" {
		return "", nil, badRequest("invalid_request", MessageNoRefreshToken)
	}
	record, ok := s.refreshTokens[refreshToken]
	if !ok || record.clientID != clientID {
		if s.rotatedRefreshTokens[refreshToken] && !call.reuseCounted {
			s.reusedRefreshTokens++
			call.reuseCounted = true
		}
		return "", nil, badRequest("invalid_grant", MessageInvalidRefreshToken)
	}
	if !now.Before(record.expiresAt) {
		return "", nil, badRequest("invalid_grant", MessageExpiredRefreshToken)
	}
	consume := func() {
		// Rotation: the old refresh token is deleted in the same request that issues the new one.
		delete(s.refreshTokens, refreshToken)
		s.rotatedRefreshTokens[refreshToken] = true
	}
	return record.username, consume, nil
}

// checkPasswordLocked checks a password grant's username and password.
func (s *Server) checkPasswordLocked(params url.Values) (string, func(), *oauthFailure) {
	account, ok := s.users[params.Get("username")]
	if !ok || subtle.ConstantTimeCompare([]byte(account.password), []byte(params.Get("password"))) != 1 {
		return "", nil, badRequest("invalid_grant", MessageInvalidUserCredentials)
	}
	return account.username, nil, nil
}

// allScopesKnown reports whether every space-separated scope in requested is in known.
func allScopesKnown(requested string, known []string) bool {
	for _, scope := range strings.Fields(requested) {
		if !slices.Contains(known, scope) {
			return false
		}
	}
	return true
}

// redirectURIMatches reports whether input matches registered: same scheme, host and port, and
// a path under the registered one. Unparsable URIs never match.
func redirectURIMatches(input, registered string) bool {
	in, err := url.Parse(input)
	if err != nil || in.Host == "" {
		return false
	}
	reg, err := url.Parse(registered)
	if err != nil || reg.Host == "" {
		return false
	}
	return strings.EqualFold(in.Scheme, reg.Scheme) &&
		strings.EqualFold(in.Hostname(), reg.Hostname()) &&
		effectivePort(in) == effectivePort(reg) &&
		strings.HasPrefix(in.Path, reg.Path)
}

// effectivePort returns u's port, or its scheme's default.
func effectivePort(u *url.URL) string {
	if port := u.Port(); port != "" {
		return port
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// serveAuthorize is /oauth/v2/authorize. Where Mautic shows its login and consent forms, this
// server approves at once for DefaultUsername (or denies, see SetAuthorizeDenied).
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.authorizeRequests++
	s.mu.Unlock()
	if s.guardAPI(w, r) {
		return
	}
	query := r.URL.Query()
	clientID, redirectURI, state := query.Get("client_id"), query.Get("redirect_uri"), query.Get("state")
	if clientID == "" {
		s.writeError(w, r, http.StatusBadRequest, "invalid_request", MessageAuthorizeNoClientID)
		return
	}
	s.mu.Lock()
	client, ok := s.clients[clientID]
	denied := s.authorizeDenied
	s.mu.Unlock()
	if !ok {
		s.writeError(w, r, http.StatusBadRequest, "invalid_client", MessageAuthorizeUnknown)
		return
	}
	switch {
	case redirectURI == "" && len(client.RedirectURIs) == 0:
		s.writeError(w, r, http.StatusBadRequest, "redirect_uri_mismatch", MessageAuthorizeNoRedirect)
		return
	case redirectURI == "" && len(client.RedirectURIs) > 1:
		s.writeError(w, r, http.StatusBadRequest, "redirect_uri_mismatch", MessageAuthorizeManyRedirect)
		return
	case redirectURI == "":
		redirectURI = client.RedirectURIs[0]
	case !matchesAny(redirectURI, client.RedirectURIs):
		s.writeError(w, r, http.StatusBadRequest, "redirect_uri_mismatch", MessageAuthorizeMismatch)
		return
	}
	target, err := url.Parse(redirectURI)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, "redirect_uri_mismatch", MessageAuthorizeMismatch)
		return
	}
	values := target.Query()
	switch responseType := query.Get("response_type"); {
	case responseType == "":
		values.Set("error", "invalid_request")
		values.Set("error_description", "Invalid response type.")
	case responseType != "code":
		values.Set("error", "unsupported_response_type")
	case denied:
		// Mautic drops the Location header when it rewrites the access_denied error.
		w.WriteHeader(http.StatusFound)
		return
	default:
		s.mu.Lock()
		values.Set("code", s.issueCodeLocked(clientID, redirectURI, DefaultUsername))
		s.mu.Unlock()
	}
	if state != "" {
		values.Set("state", state)
	}
	target.RawQuery = values.Encode()
	w.Header().Set("Location", target.String())
	w.WriteHeader(http.StatusFound)
}

// matchesAny reports whether input matches one of the registered redirect URIs.
func matchesAny(input string, registered []string) bool {
	for _, candidate := range registered {
		if redirectURIMatches(input, candidate) {
			return true
		}
	}
	return false
}

// serveNotFound answers an /api or /oauth path Mautic does not have.
func (s *Server) serveNotFound(w http.ResponseWriter, r *http.Request, p string) {
	if strings.HasPrefix(p, "/api") {
		s.mu.Lock()
		s.apiRequests++
		s.mu.Unlock()
		if s.applyAPIFault(w, r) {
			return
		}
	}
	if s.guardAPI(w, r) {
		return
	}
	s.writeError(w, r, http.StatusNotFound, "", "Requested URL not found: "+p)
}

// userAnswer is the part of Mautic's user entity that /api/users/self answers.
type userAnswer struct {
	ID          int     `json:"id"`
	IsPublished bool    `json:"isPublished"`
	Username    string  `json:"username"`
	FirstName   string  `json:"firstName"`
	LastName    string  `json:"lastName"`
	Email       string  `json:"email"`
	Position    *string `json:"position"`
}

// serveUsersSelf is /api/users/self: Bearer header or access_token query, or Basic when enabled.
func (s *Server) serveUsersSelf(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.apiRequests++
	s.mu.Unlock()
	if s.applyAPIFault(w, r) || s.guardAPI(w, r) {
		return
	}
	if hasBasicAuth(r) {
		username, password, _ := r.BasicAuth()
		s.mu.Lock()
		u, ok := s.users[username]
		valid := ok && subtle.ConstantTimeCompare([]byte(u.password), []byte(password)) == 1
		s.mu.Unlock()
		if !valid {
			s.writeError(w, r, http.StatusUnauthorized, "access_denied", MessageBasicAuthInvalid)
			return
		}
		s.writeUser(w, s.userAnswer(username))
		return
	}

	var tokens []string
	if m := bearerPattern.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		tokens = append(tokens, m[1])
	}
	if token := r.URL.Query().Get("access_token"); token != "" {
		tokens = append(tokens, token)
	}
	switch len(tokens) {
	case 0:
		s.writeError(w, r, http.StatusUnauthorized, "access_denied", MessageAccessDenied)
		return
	case 1:
	default:
		// oauth2-php throws here; Mautic's error page turns it into a 500.
		s.writeError(w, r, http.StatusInternalServerError, "", MessageTwoTokenMethods)
		return
	}
	s.mu.Lock()
	record, ok := s.accessTokens[tokens[0]]
	expired := ok && !s.clock.Now().Before(record.expiresAt)
	var answer userAnswer
	if ok && !expired {
		if record.username == "" {
			client := s.clients[record.clientID]
			answer = userAnswer{Username: fmt.Sprintf("%s [%s]", client.Name, record.clientID), FirstName: client.Name, IsPublished: true}
		} else {
			answer = s.userAnswerLocked(record.username)
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		s.writeError(w, r, http.StatusUnauthorized, "invalid_grant", MessageInvalidAccessToken)
	case expired:
		s.writeError(w, r, http.StatusUnauthorized, "invalid_grant", MessageExpiredAccessToken)
	default:
		s.writeUser(w, answer)
	}
}

// userAnswer returns the /api/users/self answer for username.
func (s *Server) userAnswer(username string) userAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userAnswerLocked(username)
}

// userAnswerLocked returns the /api/users/self answer for username; an unknown name (such as
// DefaultUsername before AddUser) gets id 1. s.mu must be held.
func (s *Server) userAnswerLocked(username string) userAnswer {
	id := 1
	if u, ok := s.users[username]; ok {
		id = u.id
	}
	return userAnswer{
		ID:          id,
		IsPublished: true,
		Username:    username,
		FirstName:   username,
		LastName:    "User",
		Email:       username + "@example.com",
	}
}

// writeUser writes a successful API answer with the Mautic-Version header.
func (s *Server) writeUser(w http.ResponseWriter, answer userAnswer) {
	s.mu.Lock()
	version := s.mauticVersion
	s.mu.Unlock()
	if version != "" {
		w.Header().Set("Mautic-Version", version)
	}
	writeJSON(w, http.StatusOK, answer)
}
