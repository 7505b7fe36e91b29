package controller_test

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/operator"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// secretWith returns a Secret with data.
func secretWith(namespace, name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, StringData: data}
}

// Hostile connections (a token endpoint that holds every answer 25 s, a server whose tokens live
// 1 s) beside healthy ones do not make the healthy ones late: the hostile host holds no more workers
// than its per-host limit, and the fast-expiring one asks no more than once per minimum interval.
// The refresh lag of the healthy connections, before and after the hostile ones arrive, is logged
// for the benchmark report (docs/benchmarks.md); the test asserts that no healthy connection's
// published token ever expired, and the exact request count of the fast-expiring server.
func TestHostileConnectionsDoNotDelayOthers(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	const (
		healthy = 50
		// healthyLifetime leaves 6 s between a healthy token's renewal (half life) and its expiry:
		// room for a 2-core machine running the other test packages at the same time, and still
		// far shorter than the 25 s the slow host holds a worker.
		healthyLifetime  = 12 * time.Second
		minTokenInterval = 3 * time.Second
		phase            = 20 * time.Second
	)
	e := newEnv(t)
	e.Mautic.SetAccessTokenLifetime(healthyLifetime)
	e.restartManager(nil, func(o *operator.Options) {
		o.MaxConcurrentReconciles = controller.DefaultMaxConcurrentReconciles
		o.Mautic = mautic.Options{Timeout: 30 * time.Second, RequestsPerSecond: -1}
		o.MinTokenInterval = minTokenInterval
	})
	e.createCredentials(e.clientCredentials())
	names := make([]string, 0, healthy)
	for i := range healthy {
		conn := e.newConnection()
		conn.Name = fmt.Sprintf("healthy-%02d", i)
		conn.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBeforePercentage: ptr.To[int32](50)}
		e.createConnection(conn)
		names = append(names, conn.Name)
	}
	watch := newLagWatch(e, names)
	g.Eventually(watch.allReady).WithTimeout(60 * time.Second).Should(BeTrue())
	before := watch.run(phase)

	// The hostile servers and their connections.
	slow := mautictest.NewServerFor(t)
	slow.SetSlowDelay(25 * time.Second)
	slow.InjectFault(mautictest.FaultSlow, -1)
	fast := mautictest.NewServerFor(t)
	fast.SetAccessTokenLifetime(time.Second)
	for i, server := range []*mautictest.Server{slow, slow, slow, fast} {
		app := server.NewClient(fmt.Sprintf("hostile-%d", i), true)
		secret := fmt.Sprintf("hostile-%d", i)
		g.Expect(k8sClient.Create(e.Ctx, secretWith(e.Namespace, secret, map[string]string{
			authv1alpha1.ClientIDKey: app.ID, authv1alpha1.ClientSecretKey: app.Secret,
		}))).To(Succeed())
		conn := e.newConnection()
		conn.Name, conn.Spec.URL, conn.Spec.CredentialsSecretRef.Name = secret, server.URL(), secret
		e.createConnection(conn)
	}
	fastStart := time.Now()
	after := watch.run(phase)
	fastRequests := fast.TokenRequests()
	elapsed := time.Since(fastStart)

	t.Logf("refresh lag of %d healthy connections (%s tokens, renewed at half life), %s each:", healthy, healthyLifetime, phase)
	t.Logf("  alone:                         %s", before)
	t.Logf("  beside 3 slow + 1 fast-expiring: %s", after)
	t.Logf("  the server whose tokens live 1s got %d token requests in %s (minimum interval %s)", fastRequests, elapsed.Round(time.Second), minTokenInterval)
	g.Expect(fastRequests).To(BeNumerically("<=", int(elapsed/minTokenInterval)+1), "one token request per minimum interval")
	g.Expect(watch.expired).To(BeZero(), "a healthy connection's published token expired")
}

// lagWatch polls the token Secrets of healthy connections and measures how late each refresh came
// after its renewal time, computed from the Secret (issued-at to the nanosecond, expiry to the
// second as the operator stores it) with the operator's own policy and jitter.
type lagWatch struct {
	e       *env
	names   []string
	renewAt map[string]time.Time
	issued  map[string]time.Time
	expired int
}

func newLagWatch(e *env, names []string) *lagWatch {
	return &lagWatch{e: e, names: names, renewAt: map[string]time.Time{}, issued: map[string]time.Time{}}
}

// observe reads one connection's token Secret: its issue time, renewal time and expiry.
func (w *lagWatch) observe(name string) (issuedAt, renewAt, expiresAt time.Time, ok bool) {
	conn := &authv1alpha1.MauticConnection{}
	secret := &corev1.Secret{}
	if k8sClient.Get(w.e.Ctx, client.ObjectKey{Namespace: w.e.Namespace, Name: name}, conn) != nil ||
		k8sClient.Get(w.e.Ctx, client.ObjectKey{Namespace: w.e.Namespace, Name: conn.TokenSecretName()}, secret) != nil {
		return time.Time{}, time.Time{}, time.Time{}, false
	}
	issuedAt, err1 := time.Parse(time.RFC3339Nano, secret.Annotations[authv1alpha1.TokenIssuedAtAnnotation])
	expiresAt, err2 := time.Parse(time.RFC3339, string(secret.Data[authv1alpha1.ExpiresAtKey]))
	if err1 != nil || err2 != nil {
		return time.Time{}, time.Time{}, time.Time{}, false
	}
	lifetime := expiresAt.Sub(issuedAt)
	renewAt = token.RenewAt(issuedAt, expiresAt, token.RenewalPolicy{RenewBeforePercentage: conn.RenewBeforePercentage()},
		token.Jitter(string(conn.UID), lifetime))
	return issuedAt, renewAt, expiresAt, true
}

// allReady reports whether every connection has a token.
func (w *lagWatch) allReady() bool {
	for _, name := range w.names {
		issuedAt, renewAt, _, ok := w.observe(name)
		if !ok {
			return false
		}
		w.issued[name], w.renewAt[name] = issuedAt, renewAt
	}
	return true
}

// run polls for d and returns the lags seen, summarised.
func (w *lagWatch) run(d time.Duration) localenv.LagSummary {
	var lags []time.Duration
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, name := range w.names {
			issuedAt, renewAt, expiresAt, ok := w.observe(name)
			if !ok {
				continue
			}
			if time.Now().After(expiresAt) {
				w.expired++
			}
			if issuedAt.After(w.issued[name]) {
				lags = append(lags, max(issuedAt.Sub(w.renewAt[name]), 0))
				w.issued[name], w.renewAt[name] = issuedAt, renewAt
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return localenv.SummariseLags(lags)
}
