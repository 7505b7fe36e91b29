package controller_test

import (
	"context"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

// The package's control plane and its client, set by setUpPackage.
var (
	controlPlane *testenv.ControlPlane
	k8sClient    client.Client
)

// TestMain stops the package's control plane, if a test started one: the pure unit tests of
// package controller need none.
func TestMain(m *testing.M) {
	testenv.Main(m)
}

// setUpPackage sets controlPlane and k8sClient once the package's control plane runs.
func setUpPackage(cp *testenv.ControlPlane) error {
	controlPlane, k8sClient = cp, cp.Client
	return nil
}

// useControlPlane starts the package's local control plane (kube-apiserver and etcd, see
// hack/controlplane.sh) on first use and sets controlPlane and k8sClient. Each test then runs its
// own manager, watching only its own namespace.
func useControlPlane(t *testing.T) {
	t.Helper()
	testenv.Shared(t, setUpPackage)
}

// env is one test's world: a namespace, a Mautic test server with one API client, and a manager.
type env struct {
	*testenv.Test
	t    *testing.T
	stop context.CancelFunc
}

// newEnv creates a namespace, a Mautic test server and a running manager for one test.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Test: testenv.NewTest(t, "t-", setUpPackage), t: t}
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
	return context.CancelFunc(e.StartManager())
}
