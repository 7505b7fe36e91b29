// Package e2e runs the manager binary, as built from cmd/manager, against a local control plane and
// the Mautic test server (internal/localenv). The manager acts as the ServiceAccount of
// config/default with the RBAC rendered from config/, so a missing RBAC rule fails the suite.
// Run it with `make test-e2e` (or `make test`), which build the control plane binaries first.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mautic-operator/mautic-operator/internal/localenv"
)

const (
	// samplesNamespace is where config/samples/ is applied.
	samplesNamespace = "e2e-samples"
	// setupTimeout bounds building the manager and starting everything.
	setupTimeout = 3 * time.Minute
	// logTailLines is how much of the manager log a failure shows.
	logTailLines = 40
)

// rbacKinds are the kinds of config/default that the suite applies: the RBAC and the namespace,
// not the Deployment (no container engine here) nor the CRD (localenv installs it).
var rbacKinds = []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// suite is what TestMain started; the tests share it.
type suite struct {
	env     *localenv.Env
	manager *localenv.Manager
	// serviceAccount is the user the manager impersonates, from config/default.
	serviceAccount string
	// probeAddr is the manager's --health-probe-bind-address.
	probeAddr string
	// samples is what was applied from config/samples/.
	samples *localenv.AppliedSamples
	// sampleErr is why the sample connection did not become Ready, once a test has seen it fail.
	sampleErr error
}

var (
	// shared is nil when the suite is skipped.
	shared *suite
	// skipReason says why every test is skipped.
	skipReason string
)

// TestMain builds the manager, starts a local environment, applies the operator's RBAC from
// config/default and config/samples/, and runs the manager as the operator's ServiceAccount.
func TestMain(m *testing.M) {
	if _, err := localenv.AssetsDir(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		skipReason = "kubectl not found: the e2e suite renders config/default with `kubectl kustomize`; install kubectl (Debian: apt-get install kubernetes-client) to run it"
		os.Exit(m.Run())
	}
	if os.Getenv("TEST_LOG") != "" {
		ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrllog.SetLogger(logr.Discard())
	}
	workDir, err := os.MkdirTemp("", "mautic-operator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	s, err := setUp(ctx, workDir, kubectl)
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup failed: %v\n", err)
	} else {
		shared = s
		code = m.Run()
	}
	// A failed test shows the log itself; a failed setup shows it here.
	if err != nil && s != nil && s.manager != nil {
		fmt.Fprintf(os.Stderr, "\nlast lines of the manager log %s:\n%s\n", s.manager.LogPath, s.manager.LogTail(logTailLines))
	}
	if s != nil {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the local environment: %v\n", err)
		}
	}
	if code == 0 {
		_ = os.RemoveAll(workDir)
	} else {
		fmt.Fprintf(os.Stderr, "the manager log and binary stay in %s\n", workDir)
	}
	os.Exit(code)
}

// setUp builds and starts everything; on error it returns what it started, for cleanup.
func setUp(ctx context.Context, workDir, kubectl string) (*suite, error) {
	binary := filepath.Join(workDir, "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, "../../cmd/manager")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager: %w\n%s", err, out)
	}

	env, err := localenv.Start(localenv.Options{WorkDir: workDir, AdminUser: "e2e-admin", ClientName: "mautic-operator e2e"})
	if err != nil {
		return nil, err
	}
	s := &suite{env: env}

	serviceAccount, err := applyRBAC(ctx, env, kubectl)
	if err != nil {
		return s, err
	}
	s.serviceAccount = "system:serviceaccount:" + serviceAccount.GetNamespace() + ":" + serviceAccount.GetName()

	if s.probeAddr, err = localenv.FreeLocalAddress(); err != nil {
		return s, err
	}
	s.manager, err = env.StartManager(localenv.ManagerOptions{
		Binary: binary,
		Args: []string{
			"--health-probe-bind-address=" + s.probeAddr,
			"--metrics-bind-address=0",
			"--leader-elect",
			"--leader-election-namespace", serviceAccount.GetNamespace(),
			// Debug logs too, so that the log scan for secrets sees everything the manager says.
			"--zap-log-level=debug",
		},
		Impersonate: s.serviceAccount,
		LogPath:     filepath.Join(workDir, "manager.log"),
	})
	if err != nil {
		return s, err
	}

	if s.samples, err = env.ApplySamples(ctx, filepath.Join("..", "..", "config", "samples"), samplesNamespace); err != nil {
		return s, err
	}
	fmt.Printf("e2e: API server %s; Mautic %s\n", env.Config.Host, env.Mautic.URL())
	fmt.Printf("e2e: manager pid %d as %s; log %s\n", s.manager.Pid, s.serviceAccount, s.manager.LogPath)
	return s, nil
}

// applyRBAC renders config/default with `kubectl kustomize`, applies its namespace and RBAC objects
// and returns the manager's ServiceAccount.
func applyRBAC(ctx context.Context, env *localenv.Env, kubectl string) (*unstructured.Unstructured, error) {
	rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join("..", "..", "config", "default")).Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize config/default: %w%s", err, stderrOf(err))
	}
	objects, err := localenv.DecodeYAML(rendered)
	if err != nil {
		return nil, fmt.Errorf("decoding the output of kubectl kustomize config/default: %w", err)
	}
	var rbac []*unstructured.Unstructured
	var serviceAccount *unstructured.Unstructured
	for _, obj := range objects {
		if !slices.Contains(rbacKinds, obj.GetKind()) {
			continue
		}
		rbac = append(rbac, obj)
		if obj.GetKind() == "ServiceAccount" {
			if serviceAccount != nil {
				return nil, fmt.Errorf("config/default renders two ServiceAccounts, %s and %s; one is expected", serviceAccount.GetName(), obj.GetName())
			}
			serviceAccount = obj
		}
	}
	if serviceAccount == nil {
		return nil, errors.New("config/default renders no ServiceAccount")
	}
	if _, err := env.Apply(ctx, "", rbac...); err != nil {
		return nil, err
	}
	return serviceAccount, nil
}

// stderrOf returns the standard error of a failed command, if it was captured.
func stderrOf(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && len(exitErr.Stderr) > 0 {
		return ": " + string(exitErr.Stderr)
	}
	return ""
}

// requireSuite skips the test when the suite cannot run here, and shows the tail of the manager log
// when it fails.
func requireSuite(t *testing.T) *suite {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the manager log %s:\n%s", shared.manager.LogPath, shared.manager.LogTail(logTailLines))
		}
	})
	return shared
}
