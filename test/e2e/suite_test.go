// Package e2e runs the manager binary, as built from cmd/manager, against a local control plane and
// the Mautic test server (internal/localenv). The manager acts as the ServiceAccount of
// config/default with the RBAC rendered from config/, so a missing RBAC rule fails the suite; it
// watches all namespaces and serves its metrics as config/default deploys it (HTTPS, Kubernetes
// authentication and authorization). The kubectl plugin, built from cmd/kubectl-mautic, runs as a
// subprocess with the admin kubeconfig; config/namespaced runs as a second manager.
// Run it with `make test-e2e` (or `make test`), which build the control plane binaries first.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mautic-operator/mautic-operator/internal/testenv"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
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
	env *localenv.Env
	// manager is the main manager, the one that watches all namespaces; tests that stop it for a
	// while start it again (restartManager).
	manager *localenv.ManagerProcess
	// managerOptions are how the main manager is started, for restarts; LogPath aside.
	managerOptions localenv.ManagerOptions
	// managerLogs are the logs of every run of the main manager, oldest first.
	managerLogs []string
	// workDir holds the binaries, kubeconfigs and logs.
	workDir string
	// kubectl is the kubectl binary, for `kubectl kustomize`.
	kubectl string
	// pluginBinary is kubectl-mautic, built from cmd/kubectl-mautic.
	pluginBinary string
	// managerBinary is the manager, built from cmd/manager.
	managerBinary string
	// serviceAccount is the user the manager impersonates, from config/default.
	serviceAccount string
	// probeAddr is the manager's --health-probe-bind-address.
	probeAddr string
	// metricsAddr is the manager's --metrics-bind-address, served over HTTPS with Kubernetes
	// authentication and authorization (--metrics-secure, the default).
	metricsAddr string
	// metricsReaderRole is the ClusterRole of config/default that allows GET /metrics.
	metricsReaderRole string
	// metricsToken is the bearer token of a ServiceAccount bound to metricsReaderRole, made on first use.
	metricsToken string
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

// TestMain builds the manager and kubectl-mautic, starts a local environment, applies the
// operator's RBAC from config/default and config/samples/, and runs the manager as the operator's
// ServiceAccount.
func TestMain(m *testing.M) {
	if _, err := testenv.AssetsDir(); err != nil {
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
	// One go build for both binaries: -o with a directory names each after its package directory.
	build := exec.CommandContext(ctx, "go", "build", "-o", workDir+string(filepath.Separator),
		"../../cmd/manager", "../../cmd/kubectl-mautic")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager and kubectl-mautic: %w\n%s", err, out)
	}

	env, err := localenv.Start(localenv.Options{WorkDir: workDir, AdminUser: "e2e-admin", ClientName: "mautic-operator e2e"})
	if err != nil {
		return nil, err
	}
	s := &suite{
		env:           env,
		workDir:       workDir,
		kubectl:       kubectl,
		managerBinary: filepath.Join(workDir, "manager"),
		pluginBinary:  filepath.Join(workDir, "kubectl-mautic"),
	}

	serviceAccount, metricsReaderRole, err := applyRBAC(ctx, env, kubectl)
	if err != nil {
		return s, err
	}
	s.serviceAccount = "system:serviceaccount:" + serviceAccount.GetNamespace() + ":" + serviceAccount.GetName()
	s.metricsReaderRole = metricsReaderRole

	if s.probeAddr, err = localenv.FreeLocalAddress(); err != nil {
		return s, err
	}
	if s.metricsAddr, err = localenv.FreeLocalAddress(); err != nil {
		return s, err
	}
	s.managerOptions = localenv.ManagerOptions{
		Binary: s.managerBinary,
		Args: []string{
			"--health-probe-bind-address=" + s.probeAddr,
			// Secure serving, the default: HTTPS, scrapers authenticated with TokenReview and
			// authorized with SubjectAccessReview, as config/default deploys it.
			"--metrics-bind-address=" + s.metricsAddr,
			"--leader-elect",
			"--leader-election-namespace", serviceAccount.GetNamespace(),
			// Debug logs too, so that the log scan for secrets sees everything the manager says.
			"--zap-log-level=debug",
		},
		Impersonate: s.serviceAccount,
	}
	if err := s.startManager(); err != nil {
		return s, err
	}

	if s.samples, err = env.ApplySamples(ctx, filepath.Join("..", "..", "config", "samples"), samplesNamespace); err != nil {
		return s, err
	}
	fmt.Printf("e2e: API server %s; Mautic %s\n", env.Config.Host, env.Mautic.URL())
	fmt.Printf("e2e: manager pid %d as %s; log %s\n", s.manager.Pid, s.serviceAccount, s.manager.LogPath)
	return s, nil
}

// startManager starts the main manager, logging to manager.log, then manager-2.log and so on.
func (s *suite) startManager() error {
	opts := s.managerOptions
	opts.LogPath = filepath.Join(s.workDir, "manager.log")
	if n := len(s.managerLogs); n > 0 {
		opts.LogPath = filepath.Join(s.workDir, fmt.Sprintf("manager-%d.log", n+1))
	}
	manager, err := s.env.StartManager(opts)
	if err != nil {
		return err
	}
	s.manager = manager
	s.managerLogs = append(s.managerLogs, manager.LogPath)
	return nil
}

// applyRBAC renders config/default with `kubectl kustomize`, applies its namespace and RBAC objects
// and returns the manager's ServiceAccount and the name of the ClusterRole that may read /metrics.
func applyRBAC(ctx context.Context, env *localenv.Env, kubectl string) (*unstructured.Unstructured, string, error) {
	rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join("..", "..", "config", "default")).Output()
	if err != nil {
		return nil, "", fmt.Errorf("kubectl kustomize config/default: %w%s", err, stderrOf(err))
	}
	objects, err := localenv.DecodeYAML(rendered)
	if err != nil {
		return nil, "", fmt.Errorf("decoding the output of kubectl kustomize config/default: %w", err)
	}
	var rbac []*unstructured.Unstructured
	var serviceAccount *unstructured.Unstructured
	var metricsReaderRole string
	for _, obj := range objects {
		if !slices.Contains(rbacKinds, obj.GetKind()) {
			continue
		}
		rbac = append(rbac, obj)
		switch {
		case obj.GetKind() == "ServiceAccount":
			if serviceAccount != nil {
				return nil, "", fmt.Errorf("config/default renders two ServiceAccounts, %s and %s; one is expected", serviceAccount.GetName(), obj.GetName())
			}
			serviceAccount = obj
		case obj.GetKind() == "ClusterRole" && allowsGetMetrics(obj):
			metricsReaderRole = obj.GetName()
		}
	}
	if serviceAccount == nil {
		return nil, "", errors.New("config/default renders no ServiceAccount")
	}
	if _, err := env.Apply(ctx, "", rbac...); err != nil {
		return nil, "", err
	}
	return serviceAccount, metricsReaderRole, nil
}

// allowsGetMetrics reports whether a ClusterRole has a rule allowing GET on the non-resource URL /metrics.
func allowsGetMetrics(role *unstructured.Unstructured) bool {
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, rule := range rules {
		rule, _ := rule.(map[string]any)
		urls, _, _ := unstructured.NestedStringSlice(rule, "nonResourceURLs")
		verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
		if slices.Contains(urls, "/metrics") && (slices.Contains(verbs, "get") || slices.Contains(verbs, "*")) {
			return true
		}
	}
	return false
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

// stopManager stops the main manager for the rest of the test, so that another manager has the
// cluster to itself, and starts it again when the test ends.
func (s *suite) stopManager(t *testing.T) {
	t.Helper()
	if err := s.manager.Stop(); err != nil {
		t.Fatalf("stopping the main manager: %v", err)
	}
	t.Cleanup(func() {
		if err := s.restartManager(context.Background()); err != nil {
			t.Errorf("starting the main manager again: %v", err)
		}
	})
}

// restartManager starts the main manager again after stopManager, with the same flags, and waits
// until it answers its readiness probe. It does nothing while the manager runs.
func (s *suite) restartManager(ctx context.Context) error {
	if !s.manager.Stopped() {
		return nil
	}
	if err := s.startManager(); err != nil {
		return err
	}
	return waitHealthy(ctx, s.manager, s.probeAddr)
}

// waitHealthy waits until the manager answers 200 on /readyz at probeAddr, failing at once when
// it exits.
func waitHealthy(ctx context.Context, manager *localenv.ManagerProcess, probeAddr string) error {
	httpClient := &http.Client{Timeout: 5 * time.Second}
	err := wait.PollUntilContextTimeout(ctx, pollInterval, eventuallyTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-manager.Done():
			return false, fmt.Errorf("the manager exited (%s); log %s:\n%s", manager.ExitStatus(), manager.LogPath, manager.LogTail(logTailLines))
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+probeAddr+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return false, nil //nolint:nilerr // not listening yet: poll again
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the manager's /readyz at %s: %w", probeAddr, err)
	}
	return nil
}
