// Package node runs the operator the way platform teams run it, on a real single-node cluster
// (hack/node/node.sh: kubelet, containerd, kube-proxy and the control plane on this machine):
// installed from the image `make image` builds, with the Helm chart and, in a second test, with
// dist/install.yaml; two replicas with leader election; the Mautic test server as a pod behind a
// Service with TLS; workloads that mount the token Secret and call Mautic with it on every
// request. docs/node.md describes the test bed and what the suite shows.
//
// The suite needs the test bed: `make test-node` brings it up, runs the suite and brings it down.
// Without the MAUTIC_NODE_* variables that hack/node/node.sh env prints, every test skips, so
// plain `go test ./...` passes over it.
package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// Image names of the suite; nothing is pulled: every image is built and imported into the
// node's containerd before the pods that use it are created.
const (
	managerRepository = "mautic-operator.local/mautic-operator"
	managerTag        = "node-1"
	managerVersion    = "v0.0.1-node.1"
	mauticImage       = "mautic-operator.local/mautic-test-server:node"
	workloadImage     = "mautic-operator.local/node-workload:node"
)

// skipMessage says why the suite skips and how to run it.
const skipMessage = "the node suite runs on the real-node test bed: run `make test-node` " +
	"(it sets MAUTIC_NODE_KUBECONFIG and the other MAUTIC_NODE_* variables of hack/node/node.sh env)"

// theBed is what TestMain set up; nil when the suite skips.
var theBed *bed

// bed is the test bed the tests share: clients of its API server and the tools to drive it.
type bed struct {
	root       string // the repository
	kubeconfig string
	nodeName   string
	ctr        string
	containerd string
	helm       string
	kubectl    string
	config     *rest.Config
	client     client.Client
	clientset  kubernetes.Interface
	platform   string // linux/<GOARCH>: the images are built for the node only
	// reportPath, when set, receives the suite's measurements as markdown.
	reportPath string
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	b, err := newBed()
	if err != nil {
		fmt.Fprintln(os.Stderr, "node suite:", err)
		os.Exit(1)
	}
	theBed = b
	if b == nil {
		fmt.Fprintln(os.Stderr, "node suite skipped:", skipMessage)
	} else if err := b.buildBaseImages(); err != nil {
		fmt.Fprintln(os.Stderr, "node suite:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// requireBed returns the test bed, or skips the test when there is none.
func requireBed(t *testing.T) *bed {
	t.Helper()
	if theBed == nil {
		t.Skip(skipMessage)
	}
	return theBed
}

// newBed reads the MAUTIC_NODE_* variables; nil without them.
func newBed() (*bed, error) {
	kubeconfig := os.Getenv("MAUTIC_NODE_KUBECONFIG")
	if kubeconfig == "" {
		return nil, nil
	}
	b := &bed{
		kubeconfig: kubeconfig,
		nodeName:   os.Getenv("MAUTIC_NODE_NAME"),
		ctr:        os.Getenv("MAUTIC_NODE_CTR"),
		containerd: os.Getenv("MAUTIC_NODE_CONTAINERD_ADDRESS"),
		helm:       os.Getenv("HELM"),
		kubectl:    envOr("KUBECTL", "kubectl"),
		platform:   "linux/" + runtime.GOARCH,
		reportPath: os.Getenv("MAUTIC_NODE_REPORT"),
	}
	for name, v := range map[string]string{"MAUTIC_NODE_NAME": b.nodeName, "MAUTIC_NODE_CTR": b.ctr,
		"MAUTIC_NODE_CONTAINERD_ADDRESS": b.containerd, "HELM": b.helm} {
		if v == "" {
			return nil, fmt.Errorf("MAUTIC_NODE_KUBECONFIG is set but %s is not: run the suite with `make test-node`", name)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	b.root = root
	b.config, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	b.config.QPS, b.config.Burst = 50, 100
	scheme := apiruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := authv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if b.client, err = client.New(b.config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	if b.clientset, err = kubernetes.NewForConfig(b.config); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node := &corev1.Node{}
	if err := b.client.Get(ctx, client.ObjectKey{Name: b.nodeName}, node); err != nil {
		return nil, fmt.Errorf("the test bed's Node %s: %w", b.nodeName, err)
	}
	return b, nil
}

// envOr returns the environment variable name, or def when it is empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// buildBaseImages builds the manager, Mautic test server and workload images with `make image`
// and imports them into the node's containerd.
func (b *bed) buildBaseImages() error {
	if err := b.buildImage("./cmd/manager", managerRepository+":"+managerTag, managerVersion, "manager-1"); err != nil {
		return err
	}
	if err := b.buildImage("./test/node/mauticserver", mauticImage, managerVersion, "mauticserver"); err != nil {
		return err
	}
	return b.buildImage("./test/node/workload", workloadImage, managerVersion, "workload")
}

// buildImage runs `make image` for pkg as image name, stamped with version, into bin/node/out
// and its tarball, which it imports into the node's containerd.
func (b *bed) buildImage(pkg, name, version, out string) error {
	start := time.Now()
	outDir := filepath.Join("bin", "node", out)
	if err := b.run("make", "-s", "image", "IMAGE_PACKAGE="+pkg, "IMG="+name, "VERSION="+version,
		"IMAGE_PLATFORMS="+b.platform, "IMAGE_OUT="+outDir); err != nil {
		return fmt.Errorf("building the image %s: %w", name, err)
	}
	if err := b.run(b.ctr, "--address", b.containerd, "-n", "k8s.io", "images", "import", outDir+".tar"); err != nil {
		return fmt.Errorf("importing the image %s: %w", name, err)
	}
	fmt.Fprintf(os.Stderr, "node suite: image %s built and imported in %s\n", name, time.Since(start).Round(time.Second))
	return nil
}

// run runs a command in the repository, its output going to the test's stderr.
func (b *bed) run(name string, args ...string) error {
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Dir = b.root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// output runs a command in the repository and returns its standard output; its standard error
// goes with the error.
func (b *bed) output(name string, args ...string) (string, error) {
	cmd := exec.CommandContext(context.Background(), name, args...)
	cmd.Dir = b.root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// helmCmd runs helm against the test bed.
func (b *bed) helmCmd(args ...string) (string, error) {
	return b.output(b.helm, append([]string{"--kubeconfig", b.kubeconfig}, args...)...)
}

// kubectlCmd runs kubectl against the test bed.
func (b *bed) kubectlCmd(args ...string) (string, error) {
	return b.output(b.kubectl, append([]string{"--kubeconfig", b.kubeconfig}, args...)...)
}

// createNamespace creates a namespace that is deleted when the test ends.
func (b *bed) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := b.client.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating the namespace %s: %v", name, err)
	}
	t.Cleanup(func() { b.deleteNamespace(t, name) })
}

// deleteNamespace deletes a namespace and waits until it is gone, so that the next test starts clean.
func (b *bed) deleteNamespace(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := client.IgnoreNotFound(b.client.Delete(ctx, ns)); err != nil {
		t.Errorf("deleting the namespace %s: %v", name, err)
		return
	}
	for ctx.Err() == nil {
		if err := b.client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			return
		}
		time.Sleep(time.Second)
	}
	t.Errorf("the namespace %s is still there after 2 minutes", name)
}
