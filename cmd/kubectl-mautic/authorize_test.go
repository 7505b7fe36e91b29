package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
)

// authorizeURLPattern finds the authorization URL the plugin prints.
var authorizeURLPattern = regexp.MustCompile(`http://\S+/oauth/v2/authorize\?\S+`)

// printedAuthorizeURL waits until the run prints the authorization URL and returns it.
func printedAuthorizeURL(t *testing.T, r *running) string {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(r.stdout.String).WithTimeout(20*time.Second).Should(MatchRegexp(authorizeURLPattern.String()),
		"stderr: %s", r.stderr)
	return authorizeURLPattern.FindString(r.stdout.String())
}

// browse is a scripted browser: it GETs rawURL, follows redirects (to Mautic's authorize
// endpoint, then to the loopback callback) and returns the last status and body.
func browse(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	return browseWith(t, &http.Client{Timeout: 30 * time.Second}, rawURL)
}

// browseWith is browse with a given HTTP client.
func browseWith(t *testing.T, browser *http.Client, rawURL string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatalf("building the request for %s: %v", rawURL, err)
	}
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatalf("browsing %s: %v", rawURL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer of %s: %v", rawURL, err)
	}
	return resp.StatusCode, string(body)
}

// stateSecret reads the state Secret of conn.
func stateSecret(ctx context.Context, conn *authv1alpha1.MauticConnection) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: conn.Namespace, Name: conn.StateSecretName()}, secret)
	return secret, err
}

// authorizeOnce runs `authorize` for conn through the scripted browser and checks it succeeded.
func authorizeOnce(t *testing.T, f *fixture, conn *authv1alpha1.MauticConnection) (stdout, stderr string) {
	t.Helper()
	g := NewWithT(t)
	r := f.start("authorize", conn.Name, "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
	authorizeURL := printedAuthorizeURL(t, r)
	status, body := browse(t, authorizeURL)
	g.Expect(r.wait(t)).To(Equal(exitOK), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Authorized; you can close this tab"))
	return r.stdout.String(), r.stderr.String()
}

func TestAuthorizeStoresRefreshToken(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
	before := time.Now().Add(-time.Second)

	r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
	authorizeURL := printedAuthorizeURL(t, r)
	stdoutLines := r.stdout.String()
	g.Expect(stdoutLines).To(HavePrefix(
		"Register this redirect URI on the Mautic API credentials (Settings > API Credentials): " + f.redirectURI() + "\n"))

	parsed, err := url.Parse(authorizeURL)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(parsed.Scheme + "://" + parsed.Host).To(Equal(f.mautic.URL()))
	g.Expect(parsed.Path).To(Equal("/oauth/v2/authorize"))
	query := parsed.Query()
	g.Expect(query.Get("client_id")).To(Equal(f.app.ID))
	g.Expect(query.Get("redirect_uri")).To(Equal(f.redirectURI()))
	g.Expect(query.Get("response_type")).To(Equal("code"))
	g.Expect(query.Get("state")).To(MatchRegexp(`^[A-Za-z0-9_-]{43}$`), "32 random bytes, base64url")

	status, body := browse(t, authorizeURL)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Authorized; you can close this tab"))
	g.Expect(r.wait(t)).To(Equal(exitOK), "stderr: %s", r.stderr)
	g.Expect(r.stdout.String()).To(ContainSubstring("Authorized crm; the operator will publish the token in Secret crm-token\n"))
	g.Expect(f.opened.String()).To(BeEmpty(), "--no-browser opens nothing")

	state, err := stateSecret(f.ctx, conn)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(state.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(state.Data).To(HaveLen(1))
	refreshToken := string(state.Data[authv1alpha1.RefreshTokenKey])
	g.Expect(refreshToken).NotTo(BeEmpty())
	g.Expect(state.Labels).To(Equal(map[string]string{
		authv1alpha1.ManagedByLabel:  authv1alpha1.ManagedByValue,
		authv1alpha1.ConnectionLabel: "crm",
	}))
	authorizedAt, err := time.Parse(time.RFC3339, state.Annotations[authv1alpha1.AuthorizedAtAnnotation])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(authorizedAt).To(BeTemporally(">=", before.Truncate(time.Second)))
	g.Expect(refreshstate.IssuedAt(state)).To(BeTemporally(">=", before))
	g.Expect(state.Annotations).NotTo(HaveKey(authv1alpha1.SeedHashAnnotation), "the credentials Secret holds no seed")
	g.Expect(state.OwnerReferences).To(HaveLen(1))
	owner := state.OwnerReferences[0]
	g.Expect(owner.APIVersion).To(Equal("auth.mautic-operator.dev/v1alpha1"))
	g.Expect(owner.Kind).To(Equal("MauticConnection"))
	g.Expect(owner.Name).To(Equal("crm"))
	g.Expect(owner.UID).To(Equal(conn.UID))
	g.Expect(owner.Controller).To(HaveValue(BeTrue()))
	g.Expect(owner.BlockOwnerDeletion).To(HaveValue(BeTrue()))

	// Neither the tokens nor the client secret are ever printed.
	for _, output := range []string{r.stdout.String(), r.stderr.String()} {
		g.Expect(output).NotTo(ContainSubstring(refreshToken))
		g.Expect(output).NotTo(ContainSubstring(f.app.Secret))
	}

	// The stored refresh token is one the server accepts.
	expectRefreshable(g, f, refreshToken)
	g.Expect(f.mautic.TokenRequestsByGrant("authorization_code")).To(Equal(1))

	// The access token of the exchange went nowhere: no token Secret was written by the plugin.
	err = k8sClient.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "crm-token"}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the operator owns the token Secret")

	// A refresh was requested from the operator.
	updated := &authv1alpha1.MauticConnection{}
	g.Expect(k8sClient.Get(f.ctx, keyOf(conn), updated)).To(Succeed())
	requestedAt, err := time.Parse(time.RFC3339Nano, updated.Annotations[authv1alpha1.RefreshRequestedAtAnnotation])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(requestedAt).To(BeTemporally(">=", before))
}

func TestAuthorizeOverTLSWithCASecret(t *testing.T) {
	g := NewWithT(t)
	f := newFixtureWith(t, mautictest.NewTLSServer())
	ca := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "mautic-ca"},
		Data:       map[string][]byte{authv1alpha1.CACertKey: f.mautic.CACertPEM()},
	}
	g.Expect(k8sClient.Create(f.ctx, ca)).To(Succeed())
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode, func(c *authv1alpha1.MauticConnection) {
		c.Spec.AllowInsecureHTTP = false
		c.Spec.TLS = &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: ca.Name}}
		c.Spec.TokenPath = "/oauth/v2/token"
	})

	r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
	g.Eventually(r.stdout.String).WithTimeout(20*time.Second).Should(ContainSubstring("https://"), "stderr: %s", r.stderr)
	authorizeURL := regexp.MustCompile(`https://\S+/oauth/v2/authorize\?\S+`).FindString(r.stdout.String())
	g.Expect(authorizeURL).To(HavePrefix(f.mautic.URL() + "/oauth/v2/authorize?"))

	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(f.mautic.CACertPEM())).To(BeTrue())
	browser := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	status, body := browseWith(t, browser, authorizeURL)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Authorized; you can close this tab"))
	g.Expect(r.wait(t)).To(Equal(exitOK), "stderr: %s", r.stderr)
	state, err := stateSecret(f.ctx, conn)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(state.Data[authv1alpha1.RefreshTokenKey]).NotTo(BeEmpty())
}

func TestAuthorizeExplainsRefusedClientSecret(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
	f.mautic.SetClientSecret(f.app.ID, "regenerated-in-mautic")

	r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
	status, body := browse(t, printedAuthorizeURL(t, r))
	g.Expect(status).To(Equal(http.StatusBadGateway))
	g.Expect(body).To(ContainSubstring("Authorization failed"))
	g.Expect(r.wait(t)).To(Equal(exitFailed))
	g.Expect(r.stderr.String()).To(ContainSubstring(fmt.Sprintf(
		"Mautic refused the client_id or client_secret of Secret %s/crm-credentials", f.ns)))
	g.Expect(r.stderr.String()).NotTo(ContainSubstring(f.app.Secret))
	_, err := stateSecret(f.ctx, conn)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
}

func TestAuthorizeReplacesStateSecret(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
	authorizeOnce(t, f, conn)
	first, err := stateSecret(f.ctx, conn)
	g.Expect(err).NotTo(HaveOccurred())

	// The operator's own bookkeeping on the state Secret survives a new authorization, but what
	// it knew about the replaced token goes.
	metav1.SetMetaDataAnnotation(&first.ObjectMeta, authv1alpha1.SeedHashAnnotation, "kept")
	refreshstate.SetRejected(first, string(first.Data[authv1alpha1.RefreshTokenKey]))
	first.Data["stale"] = []byte("dropped")
	g.Expect(k8sClient.Update(f.ctx, first)).To(Succeed())

	authorizeOnce(t, f, conn)
	second, err := stateSecret(f.ctx, conn)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(second.UID).To(Equal(first.UID), "updated, not recreated")
	g.Expect(second.Data).To(HaveLen(1))
	g.Expect(second.Data[authv1alpha1.RefreshTokenKey]).NotTo(Equal(first.Data[authv1alpha1.RefreshTokenKey]))
	g.Expect(second.Annotations).To(HaveKeyWithValue(authv1alpha1.SeedHashAnnotation, "kept"))
	g.Expect(second.Annotations).To(HaveKey(authv1alpha1.AuthorizedAtAnnotation))
	g.Expect(second.Annotations).NotTo(HaveKey(authv1alpha1.RejectedHashAnnotation))
	g.Expect(f.mautic.TokenRequestsByGrant("authorization_code")).To(Equal(2))
}

// setSeed puts seed in the refresh_token key of conn's credentials Secret.
func setSeed(t *testing.T, f *fixture, conn *authv1alpha1.MauticConnection, seed string) {
	t.Helper()
	g := NewWithT(t)
	credentials := &corev1.Secret{}
	key := types.NamespacedName{Namespace: conn.Namespace, Name: conn.Spec.CredentialsSecretRef.Name}
	g.Expect(k8sClient.Get(f.ctx, key, credentials)).To(Succeed())
	credentials.Data[authv1alpha1.RefreshTokenKey] = []byte(seed)
	g.Expect(k8sClient.Update(f.ctx, credentials)).To(Succeed())
}

func TestAuthorizeSupersedesRefreshTokenSeed(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)

	// A stale seed in the credentials Secret must not overwrite the authorization: the state
	// Secret records it as used, so that the operator does not seed from it.
	seed := "stale-seed-refresh-token"
	setSeed(t, f, conn, seed)
	authorizeOnce(t, f, conn)
	first, err := stateSecret(f.ctx, conn)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(first.Annotations).To(HaveKeyWithValue(authv1alpha1.SeedHashAnnotation, refreshstate.Digest(seed)))
	g.Expect(refreshstate.SeedUsed(first, seed)).To(BeTrue())
	authorized := refreshstate.RefreshToken(first)
	g.Expect(authorized).NotTo(BeEmpty())
	g.Expect(authorized).NotTo(Equal(seed), "the state Secret holds the newly authorized token")
	g.Expect(first.Data).To(HaveLen(1))
	g.Expect(f.mautic.TokenRequestsByGrant("authorization_code")).To(Equal(1))
	g.Expect(f.mautic.TokenRequestsByGrant("refresh_token")).To(BeZero(), "the seed was never spent")

	// The stored token is the one Mautic issued on the authorization.
	expectRefreshable(g, f, authorized)

	// Another seed put in before a new authorization is superseded too, on an update.
	newSeed := "another-stale-seed"
	setSeed(t, f, conn, newSeed)
	authorizeOnce(t, f, conn)
	second, err := stateSecret(f.ctx, conn)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(second.UID).To(Equal(first.UID), "updated, not recreated")
	g.Expect(second.Annotations).To(HaveKeyWithValue(authv1alpha1.SeedHashAnnotation, refreshstate.Digest(newSeed)))
	g.Expect(refreshstate.RefreshToken(second)).NotTo(BeElementOf(newSeed, authorized, ""))
	g.Expect(f.mautic.TokenRequestsByGrant("authorization_code")).To(Equal(2))
}

// invalidStateWarning is the line authorize prints for a callback without its state.
func invalidStateWarning(f *fixture) string {
	return "warning: ignored a request to " + f.redirectURI() + " without the OAuth state this command sent " +
		"(an old browser tab, or another program); still waiting for Mautic's redirect\n"
}

func TestAuthorizeRefusesInvalidState(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query url.Values
	}{
		{name: "wrong state", query: url.Values{"code": {"abc"}, "state": {"not-the-state"}}},
		{name: "missing state", query: url.Values{"code": {"abc"}}},
		{name: "state of an error answer", query: url.Values{"error": {"redirect_uri_mismatch"}, "state": {"forged"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t)
			conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)

			// Without --no-browser, the plugin asks the (recorded) browser to open the printed URL.
			r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port))
			authorizeURL := printedAuthorizeURL(t, r)
			g.Eventually(f.opened.String).Should(Equal(authorizeURL + "\n"))

			// A request without the flow's state is refused, and the flow goes on.
			status, body := browse(t, f.redirectURI()+"?"+tc.query.Encode())
			g.Expect(status).To(Equal(http.StatusBadRequest))
			g.Expect(body).To(ContainSubstring("Invalid OAuth state"))
			g.Expect(r.stderr.String()).To(Equal(invalidStateWarning(f)))
			g.Consistently(r.done).WithTimeout(500*time.Millisecond).ShouldNot(Receive(), "the command is still waiting")
			_, err := stateSecret(f.ctx, conn)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no state Secret is written")
			g.Expect(f.mautic.TokenRequests()).To(BeZero(), "no code is exchanged")

			// The real redirect still completes the authorization.
			status, body = browse(t, authorizeURL)
			g.Expect(status).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring("Authorized; you can close this tab"))
			g.Expect(r.wait(t)).To(Equal(exitOK), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			g.Expect(r.stderr.String()).To(Equal(invalidStateWarning(f)), "only the warning")
			state, err := stateSecret(f.ctx, conn)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(refreshstate.RefreshToken(state)).NotTo(BeEmpty())
			g.Expect(refreshstate.ControlledBy(state, conn)).To(BeTrue())
			g.Expect(f.mautic.TokenRequestsByGrant("authorization_code")).To(Equal(1))
			g.Expect(f.mautic.TokenRequests()).To(Equal(1))
		})
	}
}

func TestAuthorizeTimesOutAfterInvalidState(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
	r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser", "--timeout", "2s")
	printedAuthorizeURL(t, r)

	for range 2 {
		status, body := browse(t, f.redirectURI()+"?"+url.Values{"code": {"abc"}, "state": {"forged"}}.Encode())
		g.Expect(status).To(Equal(http.StatusBadRequest))
		g.Expect(body).To(ContainSubstring("Invalid OAuth state"))
	}
	g.Expect(r.wait(t)).To(Equal(exitFailed))
	g.Expect(r.stderr.String()).To(HavePrefix(invalidStateWarning(f) + invalidStateWarning(f) +
		"error: Mautic did not redirect to " + f.redirectURI() + " within 2s; nothing was stored"))
	_, err := stateSecret(f.ctx, conn)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
	g.Expect(f.mautic.TokenRequests()).To(BeZero())
}

func TestAuthorizeExplainsRedirectURIMismatch(t *testing.T) {
	t.Run("redirect URI not registered on the client", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.app.RedirectURIs = []string{"http://127.0.0.1:1/callback"}
		f.mautic.AddClient(f.app)
		conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)

		stdout, stderr, code := f.run("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
		g.Expect(code).To(Equal(exitFailed))
		g.Expect(stdout).To(ContainSubstring("Register this redirect URI on the Mautic API credentials (Settings > API Credentials): " + f.redirectURI()))
		g.Expect(stdout).NotTo(MatchRegexp(authorizeURLPattern.String()), "the mismatch is found before the browser opens")
		g.Expect(stderr).To(ContainSubstring("redirect_uri_mismatch"))
		g.Expect(stderr).To(ContainSubstring("the redirect URI must be registered on the Mautic API credentials exactly, host and port included"))
		g.Expect(stderr).To(ContainSubstring("add " + f.redirectURI() + " to its Redirect URI"))
		_, err := stateSecret(f.ctx, conn)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		g.Expect(f.mautic.TokenRequests()).To(BeZero())
	})

	t.Run("mismatch reported on the redirect", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
		parsed, err := url.Parse(printedAuthorizeURL(t, r))
		g.Expect(err).NotTo(HaveOccurred())

		query := url.Values{"error": {"redirect_uri_mismatch"}, "state": {parsed.Query().Get("state")}}
		status, body := browse(t, f.redirectURI()+"?"+query.Encode())
		g.Expect(status).To(Equal(http.StatusBadRequest))
		g.Expect(body).To(ContainSubstring("host and port included"))
		g.Expect(r.wait(t)).To(Equal(exitFailed))
		g.Expect(r.stderr.String()).To(ContainSubstring("must be registered on the Mautic API credentials exactly, host and port included"))
	})
}

func TestAuthorizeFailsWithoutCode(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	conn := f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
	r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
	parsed, err := url.Parse(printedAuthorizeURL(t, r))
	g.Expect(err).NotTo(HaveOccurred())

	status, _ := browse(t, f.redirectURI()+"?state="+url.QueryEscape(parsed.Query().Get("state")))
	g.Expect(status).To(Equal(http.StatusBadRequest))
	g.Expect(r.wait(t)).To(Equal(exitFailed))
	g.Expect(r.stderr.String()).To(ContainSubstring("without an authorization code"))
	_, err = stateSecret(f.ctx, conn)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
}

func TestAuthorizeTimesOutWhenConsentIsDenied(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	f.mautic.SetAuthorizeDenied(true)
	f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
	r := f.start("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser", "--timeout", "2s")

	// Mautic answers a denied consent with 302 and no Location: the browser never comes back.
	status, _ := browse(t, printedAuthorizeURL(t, r))
	g.Expect(status).To(Equal(http.StatusFound))
	g.Expect(r.wait(t)).To(Equal(exitFailed))
	g.Expect(r.stderr.String()).To(ContainSubstring("did not redirect to " + f.redirectURI() + " within 2s; nothing was stored"))
	g.Expect(r.stderr.String()).To(ContainSubstring("if access was denied"))
}

func TestAuthorizeRefusesOtherGrants(t *testing.T) {
	for _, grant := range []authv1alpha1.Grant{authv1alpha1.GrantClientCredentials, authv1alpha1.GrantBasic} {
		t.Run(string(grant), func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t)
			f.createConnection("crm", grant)
			stdout, stderr, code := f.run("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
			g.Expect(code).To(Equal(exitFailed))
			g.Expect(stdout).To(BeEmpty())
			g.Expect(stderr).To(ContainSubstring(fmt.Sprintf("MauticConnection %s/crm has spec.grant %s", f.ns, grant)))
			g.Expect(stderr).To(ContainSubstring("Set spec.grant: AuthorizationCode"))
			g.Expect(f.mautic.AuthorizeRequests()).To(BeZero())
		})
	}
}

func TestAuthorizeChecksBeforeListening(t *testing.T) {
	t.Run("port in use", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		var listenConfig net.ListenConfig
		taken, err := listenConfig.Listen(f.ctx, "tcp", f.redirectHost())
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = taken.Close() }()

		_, stderr, code := f.run("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
		g.Expect(code).To(Equal(exitFailed))
		g.Expect(stderr).To(ContainSubstring(fmt.Sprintf("port %d on 127.0.0.1 is already in use: pass --port", f.port)))
	})

	t.Run("state Secret owned by something else", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		foreign := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "crm-oauth-state"},
			StringData: map[string]string{"mine": "keep"},
		}
		g.Expect(k8sClient.Create(f.ctx, foreign)).To(Succeed())

		_, stderr, code := f.run("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
		g.Expect(code).To(Equal(exitFailed))
		g.Expect(stderr).To(ContainSubstring(fmt.Sprintf("Secret %s/crm-oauth-state exists and is not owned by MauticConnection %s/crm", f.ns, f.ns)))
		g.Expect(f.mautic.AuthorizeRequests()).To(BeZero())
	})

	t.Run("missing credentials key", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		credentials := &corev1.Secret{}
		g.Expect(k8sClient.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "crm-credentials"}, credentials)).To(Succeed())
		delete(credentials.Data, authv1alpha1.ClientSecretKey)
		g.Expect(k8sClient.Update(f.ctx, credentials)).To(Succeed())

		_, stderr, code := f.run("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
		g.Expect(code).To(Equal(exitFailed))
		g.Expect(stderr).To(ContainSubstring("has no client_secret key"))
	})

	t.Run("API disabled", func(t *testing.T) {
		g := NewWithT(t)
		f := newFixture(t)
		f.mautic.SetAPIEnabled(false)
		f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)
		_, stderr, code := f.run("authorize", "crm", "-n", f.ns, "--port", strconv.Itoa(f.port), "--no-browser")
		g.Expect(code).To(Equal(exitFailed))
		g.Expect(stderr).To(ContainSubstring("Mautic's API is disabled"))
	})
}

// redirectHost is the loopback address the plugin listens on.
func (f *fixture) redirectHost() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port))
}

// keyOf is the name of conn as a types.NamespacedName.
func keyOf(conn *authv1alpha1.MauticConnection) types.NamespacedName {
	return types.NamespacedName{Namespace: conn.Namespace, Name: conn.Name}
}

// expectRefreshable checks that Mautic gives an access token for refreshToken.
func expectRefreshable(g Gomega, f *fixture, refreshToken string) {
	token, err := mautic.New(mautic.Options{}).Token(f.ctx, mautic.TokenRequest{
		Site:         mautic.Site{BaseURL: f.mautic.URL(), AllowInsecureHTTP: true},
		Grant:        mautic.GrantRefreshToken,
		ClientID:     f.app.ID,
		ClientSecret: f.app.Secret,
		RefreshToken: refreshToken,
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(token.AccessToken).NotTo(BeEmpty())
}
