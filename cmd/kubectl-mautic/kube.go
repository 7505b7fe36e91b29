package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/scheme"
)

// userAgent identifies the plugin to the API server.
const userAgent = "kubectl-mautic"

// kubeFlags are kubectl's flags for choosing a cluster and a namespace.
type kubeFlags struct {
	// kubeconfig is an explicit kubeconfig path; empty means $KUBECONFIG or ~/.kube/config.
	kubeconfig string
	// context is the kubeconfig context to use; empty means the current context.
	context string
	// namespace overrides the context's namespace.
	namespace string
}

// addTo registers --kubeconfig, --context and -n/--namespace on fs.
func (f *kubeFlags) addTo(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "the kubeconfig context to use (default the current context)")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the MauticConnection (default the context's namespace)")
}

// valueFlags are the kubeFlags that take a value, for finding the subcommand among the arguments.
var valueFlags = map[string]bool{"--kubeconfig": true, "--context": true, "--namespace": true, "-n": true}

// connect loads the kubeconfig the way kubectl does and returns a client and the namespace to
// use: -n, else the context's namespace, else "default".
func connect(f kubeFlags) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	overrides.Context.Namespace = f.namespace
	config := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)

	namespace, _, err := config.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig: %w", err)
	}
	restConfig, err := config.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig: %w", err)
	}
	restConfig.UserAgent = userAgent
	kube, err := client.New(restConfig, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, "", fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	return kube, namespace, nil
}

// getConnection reads a MauticConnection, with a plain message when it does not exist.
func getConnection(ctx context.Context, kube client.Client, namespace, name string) (*authv1alpha1.MauticConnection, error) {
	conn := &authv1alpha1.MauticConnection{}
	err := kube.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, conn)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("MauticConnection %s/%s not found: check the name and the namespace (-n)", namespace, name)
	case isNoKind(err):
		return nil, errors.New("the cluster does not know MauticConnection: install mautic-operator's CRD first")
	case err != nil:
		return nil, fmt.Errorf("reading MauticConnection %s/%s: %w", namespace, name, err)
	}
	return conn, nil
}

// isNoKind reports whether err says the API server has no MauticConnection kind.
func isNoKind(err error) bool {
	return meta.IsNoMatchError(err)
}
