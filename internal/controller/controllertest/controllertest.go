// Package controllertest runs the MauticConnection controller for tests: one local control plane
// (kube-apiserver and etcd from hack/controlplane.sh, through envtest) per test package, and a
// manager per test that watches only that test's namespace, with the real Mautic client.
package controllertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mautic-operator/mautic-operator/internal/localenv"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// ControlPlane is a running kube-apiserver and etcd with the MauticConnection CRD installed.
type ControlPlane struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is an uncached client with Scheme.
	Client client.Client
	// Scheme knows client-go's kinds and MauticConnection.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

// Start starts a control plane; repoRoot is the path from the test package to the repository root.
// Logs are discarded unless TEST_LOG is set.
func Start(repoRoot string) (*ControlPlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test`, which builds kube-apiserver and etcd and sets it")
	}
	if os.Getenv("TEST_LOG") != "" {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		logf.SetLogger(logr.Discard())
	}
	scheme := localenv.NewScheme()

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the local control plane: %w", err)
	}
	k8sClient, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	return &ControlPlane{Config: cfg, Client: k8sClient, Scheme: scheme, env: env}, nil
}

// Main is the body of a test package's TestMain: it starts a control plane, hands it to use, runs
// the package's tests, stops the control plane and exits with the tests' result.
func Main(m *testing.M, repoRoot string, use func(*ControlPlane)) {
	cp, err := Start(repoRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	use(cp)
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the local control plane: %v\n", err)
	}
	os.Exit(code)
}

// Stop stops the control plane.
func (cp *ControlPlane) Stop() error {
	return cp.env.Stop()
}

// StartManager starts a manager that watches only namespace, as the real one does with
// --watch-namespaces, built by internal/operator as cmd/manager builds it, with the real Mautic
// client (1s timeout, no rate limit); configure may change the options. It stops when the test
// ends, or earlier through the returned function.
func (cp *ControlPlane) StartManager(t testing.TB, namespace string, configure ...func(*operator.Options)) (stop func()) {
	t.Helper()
	return cp.StartManagerThrough(t, namespace, nil, configure...)
}

// StartManagerThrough is StartManager with the manager's requests to the API server passing
// through wrap (nil: none), so that a test can fail them as an outage would.
func (cp *ControlPlane) StartManagerThrough(t testing.TB, namespace string, wrap func(http.RoundTripper) http.RoundTripper,
	configure ...func(*operator.Options)) (stop func()) {
	t.Helper()
	config := rest.CopyConfig(cp.Config)
	if wrap != nil {
		config.Wrap(wrap)
	}
	opts := operator.Options{
		MetricsAddr:             "0",
		ProbeAddr:               "0",
		Namespaces:              []string{namespace},
		MaxConcurrentReconciles: 1,
		Mautic:                  mautic.Options{Timeout: time.Second, RequestsPerSecond: -1},
		// Tests use tokens of a few seconds.
		MinTokenInterval:             100 * time.Millisecond,
		SkipControllerNameValidation: true,
	}
	for _, change := range configure {
		change(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op, err := operator.New(ctx, config, opts)
	if err != nil {
		cancel()
		t.Fatalf("creating a manager: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := op.Run(ctx); err != nil {
			t.Errorf("manager stopped: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}
