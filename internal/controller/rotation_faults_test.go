package controller_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/operator"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// restartManager stops the test's manager (as SIGTERM does: its context ends, and claimed refreshes
// finish) and starts a new one, through wrap when set, with configure.
func (e *env) restartManager(wrap func(http.RoundTripper) http.RoundTripper, configure ...func(*operator.Options)) {
	e.t.Helper()
	if e.stop != nil {
		e.stop()
	}
	e.stop = context.CancelFunc(controlPlane.StartManagerThrough(e.t, e.Namespace, wrap, configure...))
}

// persistOutage fails, while on, every write of the test's state Secret that does not claim it:
// the claim goes through, then the API server is gone as Mautic answers.
type persistOutage struct {
	on      atomic.Bool
	failed  atomic.Int32
	path    string
	forward http.RoundTripper
}

func (o *persistOutage) RoundTrip(req *http.Request) (*http.Response, error) {
	if o.on.Load() && req.Method != http.MethodGet && strings.HasPrefix(req.URL.Path, o.path) && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		_ = req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		// The body is JSON or protobuf, as the client chose: decode it either way.
		secret := &corev1.Secret{}
		_, _, decodeErr := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, secret)
		if decodeErr != nil || secret.Annotations[authv1alpha1.RefreshClaimAnnotation] == "" {
			o.failed.Add(1)
			return &http.Response{ //nolint:nilerr // an unreadable body is not a claim: it fails like the outage it plays
				StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Request: req,
				Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{"kind":"Status","apiVersion":"v1","status":"Failure",` +
					`"message":"the API server is down","reason":"ServiceUnavailable","code":503}`)),
			}, nil
		}
	}
	return o.forward.RoundTrip(req)
}

// expectStateTokenValid checks that the state Secret holds a refresh token Mautic accepts.
func (e *env) expectStateTokenValid(g Gomega) {
	e.t.Helper()
	g.Eventually(func() bool {
		return e.Mautic.RefreshTokenValid(string(e.stateSecret().Data[authv1alpha1.RefreshTokenKey]))
	}).WithTimeout(10*time.Second).Should(BeTrue(), "the state Secret holds the newest refresh token")
	g.Expect(e.Mautic.ReusedRefreshTokens()).To(BeZero(), "a rotated refresh token was spent again")
}

// The API server is down as Mautic answers a refresh: the rotated token cannot be persisted. It is
// kept in the pending directory, the manager is restarted (as a lost leader election or an OOM kill
// makes it), and the new process writes it before anything else: no token is lost or spent twice.
func TestRotationPersistFailsThenTheManagerRestarts(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newAuthorizationCodeEnv(t, 3*time.Second)
	pendingDir := t.TempDir()
	outage := &persistOutage{path: "/api/v1/namespaces/" + e.Namespace + "/secrets/" + testenv.ConnectionName + authv1alpha1.StateSecretSuffix}
	wrap := func(next http.RoundTripper) http.RoundTripper { outage.forward = next; return outage }
	withPendingDir := func(o *operator.Options) { o.PendingDir = pendingDir }
	e.restartManager(wrap, withPendingDir)
	e.waitReady(authv1alpha1.TokenValidReason)

	refreshes := e.Mautic.TokenRequestsByGrant("refresh_token")
	outage.on.Store(true)
	g.Eventually(func() int { return e.Mautic.TokenRequestsByGrant("refresh_token") }).WithTimeout(20 * time.Second).
		Should(BeNumerically(">", refreshes))
	g.Eventually(func() []string {
		files, _ := os.ReadDir(pendingDir)
		names := make([]string, 0, len(files))
		for _, f := range files {
			names = append(names, f.Name())
		}
		return names
	}).WithTimeout(5*time.Second).Should(ContainElement(HaveSuffix(".pending.json")), "the rotated token is on disk")
	g.Eventually(outage.failed.Load).Should(BeNumerically(">", 0))
	g.Expect(e.Mautic.RefreshTokenValid(string(e.stateSecret().Data[authv1alpha1.RefreshTokenKey]))).To(BeFalse(),
		"the state Secret still holds the spent token")

	// The process ends during the outage; the API server comes back; a new process starts.
	e.stop()
	g.Expect(e.Mautic.TokenRequestsByGrant("refresh_token")).To(Equal(refreshes+1), "nothing spent after the failed persist")
	outage.on.Store(false)
	e.restartManager(nil, withPendingDir)
	e.expectStateTokenValid(g)
	// The access token expired during the outage (it could not be published either): the new
	// manager publishes one, then keeps rotating.
	g.Eventually(func() bool { return e.Mautic.AccessTokenValid(accessToken(e.tokenSecret())) }).WithTimeout(20 * time.Second).
		Should(BeTrue())
	e.watchRotation(refreshes+4, 60*time.Second)
	e.stop() // every refresh in flight ends, persisted
	files, _ := os.ReadDir(pendingDir)
	g.Expect(files).To(BeEmpty(), "the replayed token is removed from the pending directory")
}

// SIGTERM while Mautic holds a refresh answer: the refresh runs to completion and is persisted
// before the manager stops; the next manager spends the rotated token.
func TestRotationShutdownDuringASlowTokenRequest(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newAuthorizationCodeEnv(t, 3*time.Second)
	withTimeout := func(o *operator.Options) { o.Mautic.Timeout = 10 * time.Second }
	e.restartManager(nil, withTimeout)
	e.waitReady(authv1alpha1.TokenValidReason)

	e.Mautic.SetSlowDelay(2 * time.Second)
	refreshes := e.Mautic.TokenRequestsByGrant("refresh_token")
	e.Mautic.InjectFault(mautictest.FaultSlowThenAnswer, 1)
	g.Eventually(func() int { return e.Mautic.TokenRequestsByGrant("refresh_token") }).WithTimeout(20*time.Second).
		Should(BeNumerically(">", refreshes), "a refresh is held by Mautic")
	stopped := time.Now()
	e.stop() // returns once the manager has stopped
	g.Expect(time.Since(stopped)).To(BeNumerically(">", time.Second), "shutdown waited for the held answer")
	g.Expect(e.Mautic.RefreshTokenValid(string(e.stateSecret().Data[authv1alpha1.RefreshTokenKey]))).To(BeTrue(),
		"the rotated token was persisted before the manager stopped")
	g.Expect(e.stateSecret().Annotations).NotTo(HaveKey(authv1alpha1.RefreshClaimAnnotation), "no claim left to block the next manager")

	e.restartManager(nil, withTimeout)
	e.watchRotation(refreshes+3, 60*time.Second)
	e.expectStateTokenValid(g)
}

// A refresh answer with a fractional expires_in is used as it is, not retried with the spent token.
func TestRotationAcceptsAFractionalExpiresIn(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newAuthorizationCodeEnv(t, 3*time.Second)
	e.waitReady(authv1alpha1.TokenValidReason)
	e.Mautic.InjectFault(mautictest.FaultFractionalExpiresIn, -1)
	e.watchRotation(e.Mautic.TokenRequestsByGrant("refresh_token")+3, 60*time.Second)
	e.expectStateTokenValid(g)
}

// A claim left by a manager that died waits out its TTL, judged by the API server's clock, then
// the refresh goes ahead.
func TestRotationWaitsForAClaimByADeadManager(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.stop()
	e.App = e.Mautic.NewClient("crm-user", false)
	e.createCredentials(e.clientCredentials())
	conn := e.newConnection()
	conn.Spec.Grant = authv1alpha1.GrantAuthorizationCode
	e.createConnection(conn)
	conn = e.connection()

	state := refreshstate.New(conn)
	refreshstate.SetRefreshToken(state, conn, e.Mautic.IssueRefreshToken(e.App.ID), time.Now())
	refreshstate.SetClaim(state, "dead-manager", time.Now().Add(-time.Hour)) // its clock was wrong, too
	g.Expect(k8sClient.Create(e.Ctx, state, client.FieldOwner(authv1alpha1.RefreshClaimFieldManager))).To(Succeed())
	const claimTTL = 4 * time.Second
	e.restartManager(nil, func(o *operator.Options) { o.ClaimTTL = claimTTL })

	g.Consistently(e.Mautic.TokenRequests).WithTimeout(claimTTL/2).WithPolling(100*time.Millisecond).
		Should(BeZero(), "the claim blocks the refresh until it is %s old by the API server's clock", claimTTL)
	e.waitReady(authv1alpha1.TokenValidReason)
	e.expectStateTokenValid(g)
	g.Expect(e.stateSecret().Annotations).NotTo(HaveKey(authv1alpha1.RefreshClaimAnnotation))
}
