package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/operator"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// tenantNamespace is where config/namespaced is installed.
	tenantNamespace = "e2e-tenant"
	// outsideNamespace is a namespace the namespaced manager must leave alone.
	outsideNamespace = "e2e-outside"
	// untouchedFor is how long the connection outside the tenant namespace is watched for a status,
	// after the namespaced manager has made the tenant's connection Ready.
	untouchedFor = 3 * time.Second
)

// namespacedKinds are every kind config/namespaced may render: namespaced objects a tenant may
// create, nothing cluster-scoped.
var namespacedKinds = []string{"ServiceAccount", "Role", "RoleBinding", "Deployment"}

// TestNamespacedInstall: config/namespaced, installed in a tenant namespace with nothing
// but namespaced objects, runs a manager that makes a connection in its namespace Ready, leaves
// connections elsewhere alone, and whose ServiceAccount cannot read Secrets outside its namespace.
//
// The main manager watches all namespaces, as config/default deploys it, and would reconcile the
// tenant's connections too; it is stopped for this test and started again at its end, so that the
// namespaced manager is alone, as in a cluster where a tenant runs its own operator: Ready then
// proves the namespaced manager's work, and a connection outside is untouched by any manager.
func TestNamespacedInstall(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	objects := s.renderNamespaced(t, g, tenantNamespace)
	var rbac []*unstructured.Unstructured
	var serviceAccount, deployment *unstructured.Unstructured
	for _, obj := range objects {
		g.Expect(namespacedKinds).To(ContainElement(obj.GetKind()), "config/namespaced renders %s %s, which a tenant cannot create", obj.GetKind(), obj.GetName())
		g.Expect(obj.GetNamespace()).To(Equal(tenantNamespace), "%s %s", obj.GetKind(), obj.GetName())
		switch obj.GetKind() {
		case "Deployment":
			deployment = obj
		case "ServiceAccount":
			serviceAccount = obj
			rbac = append(rbac, obj)
		default:
			rbac = append(rbac, obj)
		}
	}
	g.Expect(serviceAccount).NotTo(BeNil(), "config/namespaced renders a ServiceAccount")
	g.Expect(deployment).NotTo(BeNil(), "config/namespaced renders a Deployment")
	tenantUser := "system:serviceaccount:" + tenantNamespace + ":" + serviceAccount.GetName()

	// The manager's flags are the Deployment's, with the local probe address, no metrics and the
	// Lease in the tenant namespace (in a pod, the manager finds its namespace by itself). Go's flag
	// package keeps the last value of a flag given twice.
	args := deploymentArgs(g, deployment, tenantNamespace)
	g.Expect(args).To(ContainElement("--watch-namespaces="+tenantNamespace), "the Deployment's args: %v", args)
	g.Expect(args).To(ContainElement("--leader-elect"), "the Deployment's args: %v", args)
	probeAddr, err := localenv.FreeLocalAddress()
	g.Expect(err).NotTo(HaveOccurred())
	args = append(args,
		"--health-probe-bind-address="+probeAddr,
		"--metrics-bind-address=0",
		"--leader-election-namespace", tenantNamespace,
		"--zap-log-level=debug",
	)

	s.stopManager(t)

	tenantApp := s.env.Mautic.NewClient("e2e tenant", true)
	outsideApp := s.env.Mautic.NewClient("e2e outside", true)
	_, err = s.env.Apply(ctx, "", object("v1", "Namespace", "", tenantNamespace, nil))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.env.Apply(ctx, tenantNamespace, rbac...)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.env.Apply(ctx, outsideNamespace, s.connectionObjects(outsideNamespace, "crm-outside", authv1alpha1.GrantClientCredentials, outsideApp)...)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.env.Apply(ctx, tenantNamespace, s.connectionObjects(tenantNamespace, "crm-tenant", authv1alpha1.GrantClientCredentials, tenantApp)...)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		// Before the main manager starts again: it would take them over.
		for _, key := range []client.ObjectKey{{Namespace: tenantNamespace, Name: "crm-tenant"}, {Namespace: outsideNamespace, Name: "crm-outside"}} {
			conn := &authv1alpha1.MauticConnection{}
			conn.Namespace, conn.Name = key.Namespace, key.Name
			if err := s.env.Client.Delete(context.Background(), conn); client.IgnoreNotFound(err) != nil {
				t.Errorf("deleting MauticConnection %s: %v", key, err)
			}
		}
	})

	manager, err := s.env.StartManager(localenv.ManagerOptions{
		Binary:      s.managerBinary,
		Args:        args,
		Impersonate: tenantUser,
		LogPath:     filepath.Join(s.workDir, "manager-namespaced.log"),
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the namespaced manager's log %s:\n%s", manager.LogPath, manager.LogTail(logTailLines))
		}
		if err := manager.Stop(); err != nil {
			t.Errorf("stopping the namespaced manager: %v", err)
		}
	})
	t.Logf("namespaced manager pid %d as %s, args %v; log %s", manager.Pid, tenantUser, args, manager.LogPath)

	// The tenant's connection becomes Ready, with a working token and the Lease in the tenant namespace.
	conn, err := s.env.WaitReady(ctx, tenantNamespace, "crm-tenant", eventuallyTimeout)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(waitHealthy(ctx, manager, probeAddr)).To(Succeed())
	g.Expect(s.mauticAPIStatus(ctx, g, s.tokenSecret(ctx, g, conn))).To(Equal(http.StatusOK), "Mautic accepts the tenant's token")
	lease := &coordinationv1.Lease{}
	g.Expect(s.env.Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace, Name: operator.LeaderElectionID}, lease)).To(Succeed())
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil(), "the namespaced manager holds its Lease")

	// The connection outside was there before the namespaced manager started; had it been watched,
	// it would have been reconciled with the tenant's.
	outside := &authv1alpha1.MauticConnection{}
	g.Consistently(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, client.ObjectKey{Namespace: outsideNamespace, Name: "crm-outside"}, outside)).To(Succeed())
		g.Expect(outside.Status.Conditions).To(BeEmpty(), "a connection outside %s has a status", tenantNamespace)
		g.Expect(outside.Status.TokenSecretName).To(BeEmpty())
		g.Expect(outside.Status.ObservedGeneration).To(BeZero())
	}, untouchedFor, pollInterval).Should(Succeed())
	g.Expect(s.env.Mautic.TokenRequestsByClient(outsideApp.ID)).To(BeZero(), "token requests for the connection outside")
	err = s.env.Client.Get(ctx, client.ObjectKey{Namespace: outsideNamespace, Name: outside.TokenSecretName()}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no token Secret outside %s: %v", tenantNamespace, err)

	// The ServiceAccount reads Secrets in its namespace and nowhere else.
	tenant := s.clientAs(g, tenantUser, tenantNamespace)
	g.Expect(tenant.Get(ctx, client.ObjectKey{Namespace: tenantNamespace, Name: "mautic-api"}, &corev1.Secret{})).To(Succeed(),
		"the ServiceAccount reads the Secrets of its namespace")
	err = tenant.Get(ctx, client.ObjectKey{Namespace: outsideNamespace, Name: "mautic-api"}, &corev1.Secret{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "get a Secret in %s: %v", outsideNamespace, err)
	err = tenant.List(ctx, &corev1.SecretList{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list Secrets in all namespaces: %v", err)
	err = tenant.List(ctx, &corev1.SecretList{}, client.InNamespace(outsideNamespace))
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list Secrets in %s: %v", outsideNamespace, err)
	err = tenant.List(ctx, &authv1alpha1.MauticConnectionList{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list MauticConnections in all namespaces: %v", err)

	denials, err := forbiddenLines(manager.LogPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(denials).To(BeEmpty(), "the API server refused %s: config/namespaced's Role lacks a rule", tenantUser)
	logText, err := os.ReadFile(manager.LogPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(logText)).To(ContainSubstring("crm-tenant"), "the namespaced manager logs its work")
	g.Expect(string(logText)).NotTo(ContainSubstring(outsideNamespace), "the namespaced manager mentions the namespace it must not watch")
	g.Expect(leakedValues(logText, s.secretValues(ctx, g))).To(BeEmpty(), "the namespaced manager's log shows these values (not printed here)")
}

// renderNamespaced renders config/namespaced with its namespace set to namespace, as a user does
// with an overlay (`kustomize edit set namespace`), and returns the objects.
func (s *suite) renderNamespaced(t *testing.T, g Gomega, namespace string) []*unstructured.Unstructured {
	overlay := t.TempDir()
	base, err := filepath.Abs(filepath.Join("..", "..", "config", "namespaced"))
	g.Expect(err).NotTo(HaveOccurred())
	// kustomize takes bases by relative path only.
	relativeBase, err := filepath.Rel(overlay, base)
	g.Expect(err).NotTo(HaveOccurred())
	kustomization := "namespace: " + namespace + "\nresources:\n- " + filepath.ToSlash(relativeBase) + "\n"
	g.Expect(os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o600)).To(Succeed())
	rendered, err := exec.CommandContext(t.Context(), s.kubectl, "kustomize", overlay).Output()
	g.Expect(err).NotTo(HaveOccurred(), "kubectl kustomize config/namespaced%s", stderrOf(err))
	objects, err := localenv.DecodeYAML(rendered)
	g.Expect(err).NotTo(HaveOccurred())
	return objects
}

// deploymentArgs returns the args of the Deployment's manager container with $(VAR) references
// expanded as the kubelet does, from the container's env: literal values, and the pod's namespace
// for a metadata.namespace fieldRef.
func deploymentArgs(g Gomega, deployment *unstructured.Unstructured, namespace string) []string {
	containers, _, err := unstructured.NestedSlice(deployment.Object, "spec", "template", "spec", "containers")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(containers).NotTo(BeEmpty())
	container, _ := containers[0].(map[string]any)
	for _, candidate := range containers {
		if c, _ := candidate.(map[string]any); c["name"] == "manager" {
			container = c
		}
	}
	args, _, err := unstructured.NestedStringSlice(container, "args")
	g.Expect(err).NotTo(HaveOccurred())
	env, _, _ := unstructured.NestedSlice(container, "env")
	replacements := make([]string, 0, 2*len(env))
	for _, item := range env {
		variable, _ := item.(map[string]any)
		name, _, _ := unstructured.NestedString(variable, "name")
		value, _, _ := unstructured.NestedString(variable, "value")
		if fieldPath, _, _ := unstructured.NestedString(variable, "valueFrom", "fieldRef", "fieldPath"); fieldPath == "metadata.namespace" {
			value = namespace
		}
		replacements = append(replacements, "$("+name+")", value)
	}
	expand := strings.NewReplacer(replacements...)
	for i, arg := range args {
		args[i] = expand.Replace(arg)
		g.Expect(args[i]).NotTo(ContainSubstring("$("), "an arg of the Deployment refers to a variable this test cannot expand")
	}
	return args
}

// connectionObjects returns the objects of a connection with grant to the test server in namespace,
// with the Mautic client app: the namespace, the CA and credentials Secrets and the connection.
func (s *suite) connectionObjects(namespace, name string, grant authv1alpha1.Grant, app mautictest.ClientApp) []*unstructured.Unstructured {
	return []*unstructured.Unstructured{
		object("v1", "Namespace", "", namespace, nil),
		object("v1", "Secret", namespace, localenv.CASecretName, map[string]any{
			"data": map[string]any{authv1alpha1.CACertKey: base64.StdEncoding.EncodeToString(s.env.Mautic.CACertPEM())},
		}),
		object("v1", "Secret", namespace, "mautic-api", map[string]any{
			"stringData": map[string]any{authv1alpha1.ClientIDKey: app.ID, authv1alpha1.ClientSecretKey: app.Secret},
		}),
		object(authv1alpha1.GroupVersion.String(), authv1alpha1.Kind, namespace, name, map[string]any{
			"spec": map[string]any{
				"url":                  s.env.Mautic.URL(),
				"grant":                string(grant),
				"credentialsSecretRef": map[string]any{"name": "mautic-api"},
				"tls":                  map[string]any{"caSecretRef": map[string]any{"name": localenv.CASecretName}},
			},
		}),
	}
}

// clientAs returns a client that impersonates a ServiceAccount of namespace, with the groups the
// API server gives a ServiceAccount.
func (s *suite) clientAs(g Gomega, user, namespace string) client.Client {
	config := rest.CopyConfig(s.env.Config)
	config.Impersonate = rest.ImpersonationConfig{
		UserName: user,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	impersonating, err := client.New(config, client.Options{Scheme: s.env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	return impersonating
}
