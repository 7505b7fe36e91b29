package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/scheme"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

var (
	// k8sClient is the tests' own client, for arranging and checking objects.
	k8sClient client.Client
	// kubeconfigPath is a kubeconfig for the local control plane, passed to the plugin with --kubeconfig.
	kubeconfigPath string
	// kubeconfigBytes is that kubeconfig's content.
	kubeconfigBytes []byte
)

// kubeconfigDir holds the kubeconfig at kubeconfigPath; TestMain removes it.
var kubeconfigDir string

// TestMain runs the tests, removes the kubeconfig and stops the package's control plane if a test
// started one.
func TestMain(m *testing.M) {
	testenv.Main(m, func() {
		if kubeconfigDir != "" {
			_ = os.RemoveAll(kubeconfigDir)
		}
	})
}

// useControlPlane starts the package's local control plane (kube-apiserver and etcd, see
// hack/controlplane.sh) on first use, and writes a kubeconfig for it that the plugin reads as a
// user's would.
func useControlPlane(t *testing.T) {
	t.Helper()
	testenv.Shared(t, func(cp *testenv.ControlPlane) (err error) {
		if k8sClient, err = client.New(cp.Config, client.Options{Scheme: scheme.New()}); err != nil {
			return fmt.Errorf("creating a client: %w", err)
		}
		if kubeconfigDir, err = os.MkdirTemp("", "kubectl-mautic-test-"); err != nil {
			return err
		}
		kubeconfigBytes = cp.KubeConfig
		kubeconfigPath = filepath.Join(kubeconfigDir, "kubeconfig")
		return os.WriteFile(kubeconfigPath, kubeconfigBytes, 0o600)
	})
}

// fixture is one test's world: a namespace, a Mautic test server with one API client whose
// redirect URI is registered for a free loopback port, and the plugin's outside world.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	ns     string
	mautic *mautictest.Server
	app    mautictest.ClientApp
	port   int
	clock  clock.PassiveClock
	// opened records the URLs the plugin asked to open in a browser.
	opened *syncBuffer
}

// newFixture creates a namespace and a plain-HTTP Mautic test server for one test.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, mautictest.NewServer())
}

// newFixtureWith creates a namespace for one test that uses server.
func newFixtureWith(t *testing.T, server *mautictest.Server) *fixture {
	t.Helper()
	useControlPlane(t)
	g := NewWithT(t)
	f := &fixture{
		t:      t,
		ctx:    context.Background(),
		ns:     "t-" + testenv.RandomSuffix(),
		mautic: server,
		port:   freePort(t),
		clock:  clock.RealClock{},
		opened: &syncBuffer{},
	}
	t.Cleanup(f.mautic.Close)
	f.app = f.mautic.NewClient("kubectl-mautic test", false)
	f.app.RedirectURIs = []string{f.redirectURI()}
	f.mautic.AddClient(f.app)
	g.Expect(k8sClient.Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})).To(Succeed())
	t.Cleanup(func() {
		_ = k8sClient.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})
	})
	return f
}

// redirectURI is the redirect URI the plugin uses with --port f.port.
func (f *fixture) redirectURI() string {
	return fmt.Sprintf("http://127.0.0.1:%d/callback", f.port)
}

// createConnection creates a credentials Secret for f.app and a MauticConnection with grant
// pointing at the test server (plain http, so allowInsecureHTTP), after mutate.
func (f *fixture) createConnection(name string, grant authv1alpha1.Grant, mutate ...func(*authv1alpha1.MauticConnection)) *authv1alpha1.MauticConnection {
	f.t.Helper()
	g := NewWithT(f.t)
	credentials := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name + "-credentials"},
		StringData: map[string]string{authv1alpha1.ClientIDKey: f.app.ID, authv1alpha1.ClientSecretKey: f.app.Secret},
	}
	g.Expect(k8sClient.Create(f.ctx, credentials)).To(Succeed())
	conn := &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  f.mautic.URL() + "/",
			Grant:                grant,
			AllowInsecureHTTP:    true,
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: credentials.Name},
		},
	}
	for _, m := range mutate {
		m(conn)
	}
	g.Expect(k8sClient.Create(f.ctx, conn)).To(Succeed())
	return conn
}

// deps returns the plugin's outside world for this test, writing to stdout and stderr.
func (f *fixture) deps(stdout, stderr *syncBuffer) deps {
	return deps{
		stdout:  stdout,
		stderr:  stderr,
		clock:   f.clock,
		connect: connect,
		mautic:  mautic.New(mautic.Options{}),
		openBrowser: func(url string) error {
			_, _ = f.opened.Write([]byte(url + "\n"))
			return nil
		},
	}
}

// run runs the plugin to completion and returns its stdout, stderr and exit code. The
// --kubeconfig flag is added; the namespace must be given by the caller.
func (f *fixture) run(args ...string) (string, string, int) {
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := run(f.ctx, append(args, "--kubeconfig", kubeconfigPath), f.deps(stdout, stderr))
	return stdout.String(), stderr.String(), code
}

// running is a plugin run in progress.
type running struct {
	stdout, stderr *syncBuffer
	done           chan int
}

// start runs the plugin in the background, with --kubeconfig added.
func (f *fixture) start(args ...string) *running {
	r := &running{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	f.t.Cleanup(cancel)
	go func() {
		r.done <- run(ctx, append(args, "--kubeconfig", kubeconfigPath), f.deps(r.stdout, r.stderr))
	}()
	return r
}

// wait returns the exit code of the run, failing the test if it does not end in time.
func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(45 * time.Second):
		t.Fatalf("the plugin did not finish; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		return -1
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer func() { _ = listener.Close() }()
	return listener.Addr().(*net.TCPAddr).Port
}

// randomSuffix returns 8 random hex digits for unique namespace names.
