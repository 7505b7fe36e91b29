package controller_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

var (
	scheme    = runtime.NewScheme()
	restCfg   *rest.Config
	k8sClient client.Client
)

// TestMain starts one local control plane (kube-apiserver and etcd, see hack/controlplane.sh) for
// the package. Each test then runs its own manager, watching only its own namespace.
func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test`, which builds kube-apiserver and etcd and sets it")
		os.Exit(1)
	}
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
	if os.Getenv("TEST_LOG") != "" {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		logf.SetLogger(logr.Discard())
	}

	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if restCfg, err = testEnv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the local control plane: %v\n", err)
		os.Exit(1)
	}
	if k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintf(os.Stderr, "creating a client: %v\n", err)
		_ = testEnv.Stop()
		os.Exit(1)
	}
	code := m.Run()
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the local control plane: %v\n", err)
	}
	os.Exit(code)
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
	g := NewWithT(e.t)
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{e.ns: {}},
			ByObject:          map[client.Object]cache.ByObject{&corev1.Secret{}: controller.ManagedSecretsCacheOptions()},
		},
	})
	g.Expect(err).NotTo(HaveOccurred())
	reconciler := &controller.MauticConnectionReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Mautic:    mautic.New(mautic.Options{Timeout: time.Second, RequestsPerSecond: -1}),
		Clock:     clock.RealClock{},
		Recorder:  mgr.GetEventRecorder("mautic-operator"),
	}
	ctx, cancel := context.WithCancel(e.ctx)
	g.Expect(reconciler.SetupWithManager(ctx, mgr, controller.SetupOptions{Namespaces: []string{e.ns}})).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			e.t.Errorf("manager stopped: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	e.t.Cleanup(stop)
	return stop
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
