package controller_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// The package's control plane and its client, set by useControlPlane.
var (
	controlPlane     *testenv.ControlPlane
	k8sClient        client.Client
	controlPlaneOnce sync.Once
)

// TestMain stops the package's control plane, if a test started one: the pure unit tests of
// package controller need none.
func TestMain(m *testing.M) {
	testenv.Main(m)
}

// useControlPlane starts the package's local control plane (kube-apiserver and etcd, see
// hack/controlplane.sh) on first use and sets controlPlane and k8sClient. Each test then runs its
// own manager, watching only its own namespace.
func useControlPlane(t *testing.T) {
	t.Helper()
	cp := testenv.Shared(t)
	controlPlaneOnce.Do(func() { controlPlane, k8sClient = cp, cp.Client })
}

// env is one test's world: a namespace, a Mautic test server with one API client, and a manager.
type env struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	mautic *mautictest.Server
	app    mautictest.ClientApp
	stop   context.CancelFunc
}

// newEnv creates a namespace, a Mautic test server and a running manager for one test.
func newEnv(t *testing.T) *env {
	t.Helper()
	useControlPlane(t)
	g := NewWithT(t)
	e := &env{t: t, ctx: context.Background(), ns: "t-" + randomSuffix(), mautic: mautictest.NewServer()}
	t.Cleanup(e.mautic.Close)
	e.app = e.mautic.NewClient("crm", true)
	g.Expect(k8sClient.Create(e.ctx, &corev1.Namespace{ObjectMeta: ctrl.ObjectMeta{Name: e.ns}})).To(Succeed())
	e.startManager()
	return e
}

// startManager starts a manager that watches only the test's namespace, as the real one does with
// --watch-namespaces, with the real Mautic client. A previous manager of the test is stopped first.
func (e *env) startManager() {
	e.t.Helper()
	if e.stop != nil {
		e.stop()
	}
	e.stop = e.runManager()
}

// runManager starts one more manager for the test's namespace and returns what stops it.
func (e *env) runManager() context.CancelFunc {
	e.t.Helper()
	return context.CancelFunc(controlPlane.StartManager(e.t, e.ns))
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
