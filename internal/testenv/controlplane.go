// Package testenv is the root of the operator's test harness: the one bootstrap of a local control
// plane (kube-apiserver and etcd, built by hack/controlplane.sh and found through
// KUBEBUILDER_ASSETS, run by envtest) with the MauticConnection CRD installed, the one scheme, and a
// manager per test built by internal/operator as cmd/manager builds it.
//
// A test package shares one control plane, started by the first test that asks for it (Shared) and
// stopped by Main: the package's pure unit tests run without one. Its sub-packages serve the other
// tiers: localenv runs the manager binary as a process (test/e2e, test/chaos, test/scale, make
// demo), gitopshealth judges objects as Argo CD and Flux do.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mautic-operator/mautic-operator/internal/scheme"
)

const (
	// CRDName is the MauticConnection CRD that Start installs.
	CRDName = "mauticconnections.auth.mautic-operator.dev"
	// assetsEnv names the directory holding kube-apiserver and etcd.
	assetsEnv = "KUBEBUILDER_ASSETS"
)

// ControlPlane is a running kube-apiserver and etcd with the MauticConnection CRD installed.
type ControlPlane struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is an uncached client with Scheme.
	Client client.Client
	// Scheme knows client-go's kinds and MauticConnection.
	Scheme *runtime.Scheme
	// KubeConfig is a kubeconfig for Config, as a user's kubectl would read it.
	KubeConfig []byte

	env *envtest.Environment
}

// AssetsDir returns the directory of the control plane binaries from KUBEBUILDER_ASSETS, or an
// error telling how to get them.
func AssetsDir() (string, error) {
	dir := os.Getenv(assetsEnv)
	if dir == "" {
		return "", errors.New(assetsEnv + " is not set: run `make test` or `make demo`, which build kube-apiserver and etcd (hack/controlplane.sh) and set it")
	}
	return dir, nil
}

// RepoRoot returns the directory holding go.mod, searching up from the working directory, so that
// config/ and bin/ are found wherever in the repository a program or test starts.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory: run this inside the repository")
		}
		dir = parent
	}
}

// Start starts a control plane with the CRDs of crdDir installed; "" means the repository's
// config/crd/bases. Call Stop when done.
func Start(crdDir string) (*ControlPlane, error) {
	if _, err := AssetsDir(); err != nil {
		return nil, err
	}
	if crdDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		crdDir = filepath.Join(root, "config", "crd", "bases")
	}
	harnessScheme := scheme.New()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
		Scheme:                harnessScheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the local control plane: %w", err)
	}
	k8sClient, err := client.New(cfg, client.Options{Scheme: harnessScheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	return &ControlPlane{Config: cfg, Client: k8sClient, Scheme: harnessScheme, KubeConfig: env.KubeConfig, env: env}, nil
}

// AddUser adds a user with groups and returns a kubeconfig for them.
func (cp *ControlPlane) AddUser(name string, groups ...string) ([]byte, error) {
	user, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding the %s user: %w", name, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("rendering the kubeconfig of %s: %w", name, err)
	}
	return kubeconfig, nil
}

// Stop stops the control plane.
func (cp *ControlPlane) Stop() error {
	return cp.env.Stop()
}

// TB is the part of testing.TB the harness uses. The package does not import testing, so that a
// program (make demo, through localenv) can use it.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

// shared is the control plane of a test package, started by the first test that needs one.
var shared struct {
	once sync.Once
	cp   *ControlPlane
	err  error
}

// Shared returns the test package's control plane, starting it on first use and then running
// setUp, once, with it (the first caller's setUp: a package's tests pass the same one). A test that
// cannot have it fails with the reason (KUBEBUILDER_ASSETS unset, say). Logs of the control plane's
// clients and of the managers are discarded unless TEST_LOG is set. The package's TestMain must be
// Main, which stops it.
func Shared(t TB, setUp ...func(*ControlPlane) error) *ControlPlane {
	t.Helper()
	shared.once.Do(func() {
		if os.Getenv("TEST_LOG") != "" {
			logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
		} else {
			logf.SetLogger(logr.Discard())
		}
		if shared.cp, shared.err = Start(""); shared.err != nil {
			return
		}
		for _, run := range setUp {
			if shared.err = run(shared.cp); shared.err != nil {
				return
			}
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cp
}

// Main is the TestMain of a test package that uses Shared: it runs the tests (m is the package's
// *testing.M), then each of after, then stops the control plane if a test started one, and exits
// with the tests' result.
func Main(m interface{ Run() int }, after ...func()) {
	code := m.Run()
	for _, run := range after {
		run()
	}
	if shared.cp != nil {
		if err := shared.cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the local control plane: %v\n", err)
		}
	}
	os.Exit(code)
}
