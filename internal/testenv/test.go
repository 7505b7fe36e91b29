package testenv

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// Names of the objects of a test that needs one connection: the MauticConnection, its credentials
// Secret, and the token Secret the operator writes for it.
const (
	ConnectionName  = "crm"
	CredentialsName = "mautic-api"
	TokenSecretName = ConnectionName + authv1alpha1.TokenSecretSuffix
)

// Test is one test's world on its package's control plane: a namespace of its own, and a Mautic
// test server (plain HTTP) with one API client allowed the client-credentials grant, closed when
// the test ends.
type Test struct {
	// Ctx is the context of the test's requests.
	Ctx context.Context
	// ControlPlane is the package's control plane.
	ControlPlane *ControlPlane
	// Client is the control plane's client (ControlPlane.Client), for the test's requests.
	Client client.Client
	// Namespace is the test's own namespace.
	Namespace string
	// Mautic is the test's Mautic test server.
	Mautic *mautictest.Server
	// App is the API client registered in Mautic, allowed the client-credentials grant.
	App mautictest.ClientApp

	t TB
}

// NewTest starts the package's control plane on first use (Shared, with setUp) and creates a Test
// whose namespace's name begins with prefix.
func NewTest(t TB, prefix string, setUp ...func(*ControlPlane) error) *Test {
	t.Helper()
	cp := Shared(t, setUp...)
	x := &Test{t: t, Ctx: context.Background(), ControlPlane: cp, Client: cp.Client, Namespace: cp.CreateNamespace(t, prefix), Mautic: mautictest.NewServer()}
	t.Cleanup(x.Mautic.Close)
	x.App = x.Mautic.NewClient("crm", true)
	return x
}

// StartManager starts a manager for the test's namespace (see ControlPlane.StartManager).
func (x *Test) StartManager(configure ...func(*operator.Options)) (stop func()) {
	x.t.Helper()
	return x.ControlPlane.StartManager(x.t, x.Namespace, configure...)
}
