// Package localenv is a local operator environment for a machine with no cluster: a control plane
// (envtest: kube-apiserver and etcd, with the MauticConnection CRD installed), a Mautic-compatible
// test server over HTTPS, the compiled manager binary as a child process, and config/samples/
// applied as a user would. `make demo`, test/e2e, test/chaos and test/scale use it; its control
// plane is internal/testenv's.
//
// It never logs or prints a token, a client secret or any other secret value, and does not depend
// on the testing package.
package localenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
)

const (
	// DefaultAdminUser is the admin (group system:masters) whose kubeconfig Start writes.
	DefaultAdminUser = "localenv-admin"
	// DefaultClientName is the display name of the Mautic API client Start registers.
	DefaultClientName = "mautic-operator localenv"
)

// Options configure Start. The zero value is usable.
type Options struct {
	// CRDDirectory holds the CRD manifests to install; default config/crd/bases of the repository.
	CRDDirectory string
	// WorkDir receives the admin kubeconfig and the manager logs; default a new temporary directory,
	// which Stop leaves in place so that the logs can still be read.
	WorkDir string
	// AdminUser names the system:masters user of the kubeconfig Start writes; default DefaultAdminUser.
	AdminUser string
	// ClientName is the display name of the Mautic API client; default DefaultClientName.
	ClientName string
	// AccessTokenLifetime is how long the test server's access tokens live; default Mautic's (1h).
	AccessTokenLifetime time.Duration
}

// Env is a running local environment. Its fields are read-only once Start returns.
type Env struct {
	// Root is the repository root (the directory holding go.mod).
	Root string
	// WorkDir holds the kubeconfigs and manager logs.
	WorkDir string
	// Config reaches the API server as an admin (group system:masters).
	Config *rest.Config
	// Client is an admin client whose scheme knows the built-in kinds and MauticConnection.
	Client client.Client
	// Scheme is the Client's scheme.
	Scheme *runtime.Scheme
	// AdminUser is the user of the kubeconfig at KubeconfigPath.
	AdminUser string
	// KubeconfigPath is a kubeconfig for AdminUser (group system:masters); Stop removes it.
	KubeconfigPath string
	// Mautic is the Mautic-compatible test server, serving HTTPS with a self-signed certificate.
	Mautic *mautictest.Server
	// MauticClient is the API client registered in Mautic, allowed the client-credentials grant.
	MauticClient mautictest.ClientApp

	controlPlane *testenv.ControlPlane
	adminConfig  []byte // the admin kubeconfig, the base of impersonating kubeconfigs

	mu          sync.Mutex
	managers    []*ManagerProcess
	kubeconfigs []string // files holding admin credentials, removed by Stop

	stopOnce sync.Once
	stopErr  error
}

// Start starts the control plane with the CRDs installed, writes an admin kubeconfig and starts
// the Mautic test server with one API client. On error, whatever was started is stopped again.
// Call Stop when done.
func Start(opts Options) (_ *Env, err error) {
	if _, err := testenv.AssetsDir(); err != nil {
		return nil, err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, WorkDir: opts.WorkDir, AdminUser: opts.AdminUser}
	if e.AdminUser == "" {
		e.AdminUser = DefaultAdminUser
	}
	if e.WorkDir == "" {
		if e.WorkDir, err = os.MkdirTemp("", "mautic-operator-localenv-"); err != nil {
			return nil, fmt.Errorf("creating a work directory: %w", err)
		}
	}
	crdDir := opts.CRDDirectory
	if crdDir == "" {
		crdDir = filepath.Join(root, "config", "crd", "bases")
	}

	if e.controlPlane, err = testenv.Start(crdDir); err != nil {
		return nil, err
	}
	e.Config, e.Client, e.Scheme = e.controlPlane.Config, e.controlPlane.Client, e.controlPlane.Scheme
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	if err := e.writeAdminKubeconfig(); err != nil {
		return nil, err
	}

	e.Mautic = mautictest.NewTLSServer()
	if opts.AccessTokenLifetime > 0 {
		e.Mautic.SetAccessTokenLifetime(opts.AccessTokenLifetime)
	}
	clientName := opts.ClientName
	if clientName == "" {
		clientName = DefaultClientName
	}
	e.MauticClient = e.Mautic.NewClient(clientName, true)
	return e, nil
}

// writeAdminKubeconfig adds the admin user and writes its kubeconfig to KubeconfigPath.
func (e *Env) writeAdminKubeconfig() error {
	var err error
	if e.adminConfig, err = e.controlPlane.AddUser(e.AdminUser, "system:masters"); err != nil {
		return err
	}
	e.KubeconfigPath = filepath.Join(e.WorkDir, "kubeconfig")
	return e.writeKubeconfig(e.KubeconfigPath, e.adminConfig)
}

// writeKubeconfig writes a kubeconfig readable by the owner only and remembers it for Stop.
func (e *Env) writeKubeconfig(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kubeconfigs = append(e.kubeconfigs, path)
	return nil
}

// Stop stops every manager started by StartManager (SIGTERM to its process group), the Mautic test
// server and the control plane, and removes the kubeconfigs; the manager logs stay in WorkDir.
// Only the first call does anything; later calls return the same result.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		managers, kubeconfigs := e.managers, e.kubeconfigs
		e.mu.Unlock()
		var errs []error
		for _, m := range managers {
			errs = append(errs, m.Stop())
		}
		if e.Mautic != nil {
			e.Mautic.Close()
		}
		if e.controlPlane != nil && e.Config != nil {
			if err := e.controlPlane.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping the local control plane: %w", err))
			}
		}
		for _, path := range kubeconfigs {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

// MauticHTTPClient returns an HTTP client that trusts the test server's certificate, for calling
// Mautic as a workload would.
func (e *Env) MauticHTTPClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.Mautic.CACertPEM()) {
		return nil, errors.New("the test server's certificate is not PEM")
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

// FreeLocalAddress returns a loopback address with a port that was free a moment ago, for a
// manager flag such as --health-probe-bind-address.
func FreeLocalAddress() (string, error) {
	var listenConfig net.ListenConfig
	listener, err := listenConfig.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := listener.Addr().String()
	return addr, listener.Close()
}
