package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
)

const (
	// defaultPort is the loopback port of the redirect URI. It is fixed and documented because
	// Mautic matches redirect URIs host and port included: a random port is never registered.
	defaultPort = 38080
	// defaultTimeout is how long authorize waits for Mautic to redirect back.
	defaultTimeout = 5 * time.Minute
	// callbackPath is the path of the redirect URI.
	callbackPath = "/callback"
	// authorizePath is Mautic's authorization endpoint, relative to the site URL.
	authorizePath = "/oauth/v2/authorize"
	// probeTimeout bounds the request that checks the authorization endpoint before the browser opens.
	probeTimeout = 30 * time.Second
	// maxProbeBody limits how much of the authorization endpoint's error answer is read.
	maxProbeBody = 64 << 10
)

// authorizeCommand is `kubectl mautic authorize NAME`.
type authorizeCommand struct {
	port      int
	noBrowser bool
	timeout   time.Duration
}

func (c *authorizeCommand) bind(fs *pflag.FlagSet) {
	fs.IntVar(&c.port, "port", defaultPort, "port of the redirect URI http://127.0.0.1:PORT/callback, as registered in Mautic")
	fs.BoolVar(&c.noBrowser, "no-browser", false, "print the authorization URL without trying to open a browser")
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout, "how long to wait for Mautic to redirect back")
}

func (c *authorizeCommand) validate() error {
	if c.port < 1 || c.port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port (1 to 65535)", c.port)
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout %s must be positive, e.g. 5m", c.timeout)
	}
	return nil
}

func (c *authorizeCommand) run(ctx context.Context, inv invocation) error {
	flow, err := prepareAuthorize(ctx, inv, c.port)
	if err != nil {
		return err
	}
	out := inv.stdout
	fmt.Fprintf(out, "Register this redirect URI on the Mautic API credentials (Settings > API Credentials): %s\n", flow.redirectURI)

	listener, err := listenLoopback(ctx, c.port)
	if err != nil {
		return err
	}
	defer func() { _ = listener.Close() }()
	if err := flow.probeAuthorizeEndpoint(ctx); err != nil {
		return err
	}

	authorizeURL := flow.authorizeURL(true)
	fmt.Fprintf(out, "Open this URL in a browser, log in to Mautic and approve access:\n\n  %s\n\n", authorizeURL)
	if !c.noBrowser && inv.openBrowser != nil {
		_ = inv.openBrowser(authorizeURL) // the URL is printed: a missing opener is no failure
	}
	fmt.Fprintf(out, "Waiting up to %s for Mautic to redirect to %s ...\n", c.timeout, flow.redirectURI)
	if err := flow.serve(ctx, listener, c.timeout); err != nil {
		return err
	}
	fmt.Fprintf(out, "Authorized %s; the operator will publish the token in Secret %s\n", flow.conn.Name, flow.conn.TokenSecretName())
	fmt.Fprintf(out, "Follow it with: kubectl mautic status %s -n %s\n", flow.conn.Name, flow.conn.Namespace)
	return nil
}

// authorizeFlow is one run of the authorization-code flow for one MauticConnection.
type authorizeFlow struct {
	kube   client.Client
	mautic mautic.Client
	clock  clock.PassiveClock
	// stderr receives warnings while the flow waits, such as a callback with a wrong state.
	stderr io.Writer

	conn         *authv1alpha1.MauticConnection
	baseURL      string
	clientID     string
	clientSecret string
	caPEM        []byte
	// seed is the refresh_token seed of the credentials Secret, "" when it holds none. The
	// authorization supersedes it: the state Secret records it as used, so that the operator
	// does not overwrite the new refresh token with it.
	seed        string
	redirectURI string
	state       string

	// ctx bounds the work a callback does (code exchange and Secret writes).
	ctx context.Context
	// mu serialises callbacks; the first one to /callback with the flow's state decides the
	// outcome, and writes to stderr.
	mu       sync.Mutex
	finished bool
	result   chan error
}

// prepareAuthorize reads everything the flow needs and checks it before anything listens or a
// browser opens: the connection and its grant, the credentials, the CA, and that the state
// Secret, if present, belongs to this connection.
func prepareAuthorize(ctx context.Context, inv invocation, port int) (*authorizeFlow, error) {
	conn, err := getConnection(ctx, inv.kube, inv.namespace, inv.name)
	if err != nil {
		return nil, err
	}
	if grant := conn.EffectiveGrant(); grant != authv1alpha1.GrantAuthorizationCode {
		return nil, fmt.Errorf("MauticConnection %s/%s has spec.grant %s; kubectl mautic authorize works only with spec.grant: %s. "+
			"Set spec.grant: %s (the credentials Secret then holds client_id and client_secret) to authorize as a Mautic user; "+
			"a %s connection needs no authorization",
			conn.Namespace, conn.Name, grant, authv1alpha1.GrantAuthorizationCode, authv1alpha1.GrantAuthorizationCode, grant)
	}
	baseURL, err := mautic.NormalizeURL(conn.Spec.URL)
	if err != nil {
		return nil, fmt.Errorf("spec.url of MauticConnection %s/%s: %w", conn.Namespace, conn.Name, err)
	}
	credentials, err := readSecret(ctx, inv.kube, conn.Namespace, conn.Spec.CredentialsSecretRef.Name, "credentials Secret (spec.credentialsSecretRef)")
	if err != nil {
		return nil, err
	}
	for _, key := range []string{authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey} {
		if len(credentials.Data[key]) == 0 {
			return nil, fmt.Errorf("credentials Secret %s/%s has no %s key: copy the client's %s from Mautic's Settings > API Credentials into it",
				conn.Namespace, credentials.Name, key, key)
		}
	}
	var caPEM []byte
	if conn.Spec.TLS != nil && conn.Spec.TLS.CASecretRef != nil {
		caSecret, err := readSecret(ctx, inv.kube, conn.Namespace, conn.Spec.TLS.CASecretRef.Name, "CA Secret (spec.tls.caSecretRef)")
		if err != nil {
			return nil, err
		}
		caPEM = caSecret.Data[authv1alpha1.CACertKey]
		if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("CA Secret %s/%s has no PEM certificate in its %s key", conn.Namespace, caSecret.Name, authv1alpha1.CACertKey)
		}
	}
	if err := checkStateSecretOwner(ctx, inv.kube, conn); err != nil {
		return nil, err
	}
	state, err := randomState()
	if err != nil {
		return nil, err
	}
	return &authorizeFlow{
		kube:         inv.kube,
		mautic:       inv.mautic,
		clock:        inv.clock,
		stderr:       inv.stderr,
		conn:         conn,
		baseURL:      baseURL,
		clientID:     string(credentials.Data[authv1alpha1.ClientIDKey]),
		clientSecret: string(credentials.Data[authv1alpha1.ClientSecretKey]),
		caPEM:        caPEM,
		seed:         string(credentials.Data[authv1alpha1.RefreshTokenKey]),
		redirectURI:  "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + callbackPath,
		state:        state,
		ctx:          ctx,
		result:       make(chan error, 1),
	}, nil
}

// readSecret reads a Secret the connection names, with a message naming what it is for.
func readSecret(ctx context.Context, kube client.Client, namespace, name, what string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := kube.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%s %s/%s not found: create it first", what, namespace, name)
	case err != nil:
		return nil, fmt.Errorf("reading %s %s/%s: %w", what, namespace, name, err)
	}
	return secret, nil
}

// randomState returns 32 random bytes, base64url-encoded, for the OAuth2 state parameter.
func randomState() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the OAuth state: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// listenLoopback listens on 127.0.0.1:port for Mautic's redirect.
func listenLoopback(ctx context.Context, port int) (net.Listener, error) {
	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("port %d on 127.0.0.1 is already in use: pass --port with a free port "+
			"(and register http://127.0.0.1:PORT%s with that port on the Mautic API credentials)", port, callbackPath)
	case err != nil:
		return nil, fmt.Errorf("listening on 127.0.0.1:%d for Mautic's redirect (pass --port to use another port): %w", port, err)
	}
	return listener, nil
}

// authorizeURL returns Mautic's authorization URL for this flow. The probe form (complete false)
// has neither response_type nor state, so that no server issues a code for it.
func (f *authorizeFlow) authorizeURL(complete bool) string {
	query := url.Values{"client_id": {f.clientID}, "redirect_uri": {f.redirectURI}}
	if complete {
		query.Set("response_type", "code")
		query.Set("state", f.state)
	}
	if len(f.conn.Spec.Scopes) > 0 {
		query.Set("scope", strings.Join(f.conn.Spec.Scopes, " "))
	}
	return f.baseURL + authorizePath + "?" + query.Encode()
}

// probeAuthorizeEndpoint asks the authorization endpoint, without following redirects, whether
// it refuses this client or redirect URI outright, so that the user hears the fix before the
// browser dance: Mautic answers a disabled API with 403 api_disabled, and servers that check the
// redirect URI before the login form answer 400 redirect_uri_mismatch. The probe carries no
// response_type, so that a server that accepts it redirects with an error instead of issuing a
// code. Any other answer (a login page, a redirect) lets the flow go on.
func (f *authorizeFlow) probeAuthorizeEndpoint(ctx context.Context) error {
	httpClient, err := probeClient(f.caPEM)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.authorizeURL(false), nil)
	if err != nil {
		return fmt.Errorf("building the authorization request: %w", err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Mautic's authorization endpoint %s%s: %w", f.baseURL, authorizePath, unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 400 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	errorType, message := parseOAuthError(body)
	switch errorType {
	case "redirect_uri_mismatch": //nolint:goconst // OAuth2 error codes read best as on the wire, like the other cases
		return f.mismatchError()
	case "api_disabled":
		return fmt.Errorf("Mautic's API is disabled (HTTP %d api_disabled): enable it in Mautic's Configuration > API Settings, then run this command again",
			resp.StatusCode)
	case "invalid_client":
		return fmt.Errorf("Mautic does not know client_id %q from Secret %s/%s (HTTP %d invalid_client %q): "+
			"copy the client id from Settings > API Credentials", f.clientID, f.conn.Namespace, f.conn.Spec.CredentialsSecretRef.Name,
			resp.StatusCode, message)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s%s answered HTTP 404: spec.url %q does not look like the Mautic site URL "+
			"(add /index.php for a site without URL rewriting)", f.baseURL, authorizePath, f.conn.Spec.URL)
	}
	return nil
}

// probeClient returns an HTTP client that trusts caPEM in addition to the system roots and does
// not follow redirects.
func probeClient(caPEM []byte) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the CA Secret holds no PEM certificate")
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       probeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// unwrapURLError drops url.Error's repetition of the whole URL.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}

// parseOAuthError reads an error type and message from Mautic's {"errors":[{"message","type"}]}
// or RFC 6749's {"error","error_description"}; empty strings when the body is neither.
func parseOAuthError(body []byte) (string, string) {
	var answer struct {
		Errors []struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"errors"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &answer) != nil {
		return "", ""
	}
	if len(answer.Errors) > 0 {
		return answer.Errors[0].Type, answer.Errors[0].Message
	}
	return answer.Error, answer.ErrorDescription
}

// mismatchError explains redirect_uri_mismatch.
func (f *authorizeFlow) mismatchError() error {
	return fmt.Errorf("Mautic refused the redirect URI %s (redirect_uri_mismatch): the redirect URI must be registered on the "+
		"Mautic API credentials exactly, host and port included. In Mautic, open Settings > API Credentials, edit the "+
		"credentials of client %s, add %s to its Redirect URI, and run this command again (or pass --port with the port "+
		"that is registered)", f.redirectURI, f.clientID, f.redirectURI)
}

// serve answers Mautic's redirect on listener and returns the outcome of the first callback that
// carries the flow's state, or an error when none arrives within timeout. Callbacks with another
// state are refused and do not end the wait.
func (f *authorizeFlow) serve(ctx context.Context, listener net.Listener, timeout time.Duration) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+callbackPath, f.handleCallback)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdownCtx)
	}()

	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	select {
	case err := <-f.result:
		return err
	case <-wait.Done():
	}
	// A callback may be in progress: wait for it, and refuse any later one.
	f.mu.Lock()
	handled := f.finished
	f.finished = true
	f.mu.Unlock()
	if handled {
		return <-f.result
	}
	if ctx.Err() != nil {
		return errors.New("interrupted before Mautic redirected back; nothing was stored")
	}
	return fmt.Errorf("Mautic did not redirect to %s within %s; nothing was stored. If Mautic showed redirect_uri_mismatch, "+
		"register that redirect URI exactly, host and port included, on Settings > API Credentials; if access was denied "+
		"(Mautic then shows an empty page), run this command again and approve; otherwise pass a longer --timeout",
		f.redirectURI, timeout)
}

// handleCallback answers Mautic's redirect. A request without the flow's state (an old browser
// tab, another program) is refused with a warning and the wait goes on; the first request with
// the flow's state decides the outcome, and later ones are told the flow is over.
func (f *authorizeFlow) handleCallback(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished {
		writePage(w, http.StatusConflict, "Already finished", "This authorization has already finished; you can close this tab.")
		return
	}
	query := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(query.Get("state")), []byte(f.state)) != 1 {
		// Warn before answering, so that the warning is out by the time the requester has its answer.
		fmt.Fprintf(f.stderr, "warning: ignored a request to %s without the OAuth state this command sent "+
			"(an old browser tab, or another program); still waiting for Mautic's redirect\n", f.redirectURI)
		writePage(w, http.StatusBadRequest, "Invalid OAuth state",
			"This answer does not belong to the authorization kubectl mautic started; nothing was stored, "+
				"and kubectl mautic is still waiting for Mautic's redirect.")
		return
	}
	status, title, detail, err := f.complete(query)
	writePage(w, status, title, detail)
	f.finished = true
	f.result <- err
}

// complete reads the code or error of a callback that carries the flow's state, exchanges the
// code at once (codes live 30 seconds), and stores the refresh token. It returns the page for the
// browser and the outcome for the command.
func (f *authorizeFlow) complete(query url.Values) (int, string, string, error) {
	const failedTitle = "Authorization failed"
	if errorCode := query.Get("error"); errorCode != "" {
		err := f.redirectError(errorCode, query.Get("error_description"))
		return http.StatusBadRequest, failedTitle, err.Error(), err
	}
	code := query.Get("code")
	if code == "" {
		err := fmt.Errorf("Mautic redirected to %s without an authorization code or an error; nothing was stored. "+
			"Run kubectl mautic authorize %s -n %s again and approve access", f.redirectURI, f.conn.Name, f.conn.Namespace)
		return http.StatusBadRequest, failedTitle, err.Error(), err
	}
	if err := f.exchangeAndStore(code); err != nil {
		return http.StatusBadGateway, failedTitle, err.Error(), err
	}
	return http.StatusOK, "Authorized; you can close this tab", fmt.Sprintf(
		"kubectl mautic stored the refresh token of MauticConnection %s/%s; the operator will publish the token in Secret %s.",
		f.conn.Namespace, f.conn.Name, f.conn.TokenSecretName()), nil
}

// redirectError explains an error Mautic sent back on the redirect instead of a code.
func (f *authorizeFlow) redirectError(errorCode, description string) error {
	switch errorCode {
	case "redirect_uri_mismatch":
		return f.mismatchError()
	case "access_denied":
		return fmt.Errorf("access was denied in Mautic (access_denied); nothing was stored. Run kubectl mautic authorize %s -n %s again and approve",
			f.conn.Name, f.conn.Namespace)
	}
	err := fmt.Errorf("Mautic answered the authorization with error %q", errorCode)
	if description != "" {
		err = fmt.Errorf("%w: %q", err, description)
	}
	return fmt.Errorf("%w; nothing was stored", err)
}

// exchangeAndStore exchanges code for tokens, writes the refresh token to the state Secret and
// asks the operator to publish an access token from it. The access token of the exchange is
// dropped: the operator owns the token Secret.
func (f *authorizeFlow) exchangeAndStore(code string) error {
	spec := f.conn.Spec
	token, err := f.mautic.Token(f.ctx, mautic.TokenRequest{
		Site:         mautic.Site{BaseURL: f.baseURL, CACert: f.caPEM, AllowInsecureHTTP: f.conn.Spec.AllowInsecureHTTP},
		Grant:        mautic.GrantAuthorizationCode,
		ClientID:     f.clientID,
		ClientSecret: f.clientSecret,
		Code:         code,
		RedirectURI:  f.redirectURI,
		TokenPath:    spec.TokenPath,
		Scopes:       spec.Scopes,
	})
	if err != nil {
		return f.exchangeError(err)
	}
	if token.RefreshToken == "" {
		return errors.New("the token endpoint answered without a refresh token; the operator needs one to keep the connection alive. " +
			"Check that the OAuth2 server issues refresh tokens to this client")
	}
	now := f.clock.Now()
	if err := writeStateSecret(f.ctx, f.kube, f.conn, token.RefreshToken, f.seed, now); err != nil {
		return err
	}
	if _, err := requestRefresh(f.ctx, f.kube, f.conn, now); err != nil {
		return fmt.Errorf("the refresh token is stored in Secret %s/%s, but asking the operator for a token failed: %w; "+
			"run kubectl mautic refresh %s -n %s", f.conn.Namespace, f.conn.StateSecretName(), err, f.conn.Name, f.conn.Namespace)
	}
	return nil
}

// exchangeError explains a failed code exchange.
func (f *authorizeFlow) exchangeError(err error) error {
	var mauticErr *mautic.Error
	if errors.As(err, &mauticErr) {
		switch mauticErr.Type {
		case "redirect_uri_mismatch":
			return f.mismatchError()
		case "invalid_grant":
			return fmt.Errorf("Mautic refused the authorization code (%w): a code works once and for 30 seconds; run this command again", err)
		case "invalid_client":
			return fmt.Errorf("Mautic refused the client_id or client_secret of Secret %s/%s (%w): copy both from Settings > API Credentials",
				f.conn.Namespace, f.conn.Spec.CredentialsSecretRef.Name, err)
		}
	}
	return fmt.Errorf("exchanging the authorization code: %w", err)
}

// checkStateSecretOwner refuses to go on when a Secret with the state Secret's name exists and
// is not controlled by conn: it is someone else's, and the operator would refuse it too.
func checkStateSecretOwner(ctx context.Context, kube client.Client, conn *authv1alpha1.MauticConnection) error {
	state := &corev1.Secret{}
	err := kube.Get(ctx, types.NamespacedName{Namespace: conn.Namespace, Name: conn.StateSecretName()}, state)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading Secret %s/%s: %w", conn.Namespace, conn.StateSecretName(), err)
	}
	return stateSecretOwnerError(state, conn)
}

// stateSecretOwnerError returns an error unless state is controlled by conn.
func stateSecretOwnerError(state *corev1.Secret, conn *authv1alpha1.MauticConnection) error {
	if refreshstate.ControlledBy(state, conn) {
		return nil
	}
	return fmt.Errorf("Secret %s/%s exists and is not owned by MauticConnection %s/%s: delete it "+
		"(kubectl delete secret %s -n %s) and run this command again", state.Namespace, state.Name, conn.Namespace, conn.Name,
		state.Name, state.Namespace)
}

// writeStateSecret creates or updates the state Secret so that it holds refreshToken alone, as
// refreshstate.SetAuthorized builds it (the same labels, controller reference and annotations
// the operator writes, with the authorization's time and seed). Other annotations (the
// operator's bookkeeping) are kept, except those about the replaced token. An update is guarded by the
// resourceVersion just read, and retried on a conflict.
func writeStateSecret(ctx context.Context, kube client.Client, conn *authv1alpha1.MauticConnection, refreshToken, seed string, now time.Time) error {
	key := types.NamespacedName{Namespace: conn.Namespace, Name: conn.StateSecretName()}
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, retriable, func() error {
		state := &corev1.Secret{}
		err := kube.Get(ctx, key, state)
		switch {
		case apierrors.IsNotFound(err):
			state = refreshstate.New(conn)
			refreshstate.SetAuthorized(state, conn, refreshToken, seed, now)
			return kube.Create(ctx, state)
		case err != nil:
			return err
		}
		if err := stateSecretOwnerError(state, conn); err != nil {
			return err
		}
		refreshstate.SetAuthorized(state, conn, refreshToken, seed, now)
		return kube.Update(ctx, state)
	})
	if err != nil {
		return fmt.Errorf("storing the refresh token in Secret %s/%s: %w; run this command again", key.Namespace, key.Name, err)
	}
	return nil
}

// page is the HTML the browser gets back from the callback.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} - kubectl mautic</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;line-height:1.5}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Detail}}</p></body></html>
`))

// writePage answers the browser with a small HTML page.
func writePage(w http.ResponseWriter, status int, title, detail string) {
	header := w.Header()
	header.Set("Content-Type", "text/html; charset=utf-8")
	header.Set("Cache-Control", "no-store")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = page.Execute(w, struct{ Title, Detail string }{title, detail})
}
