package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// operatorInstall is the operator as one of the tests installed it.
type operatorInstall struct {
	namespace  string // the manager's namespace
	deployment string
	replicas   int32
}

// managerPods returns the running manager pods that are not being deleted.
func (b *bed) managerPods(t *testing.T, op *operatorInstall) []corev1.Pod {
	t.Helper()
	deploy := &appsv1.Deployment{}
	must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: op.namespace, Name: op.deployment}, deploy), "reading the manager Deployment")
	selector, err := metav1.LabelSelectorAsSelector(deploy.Spec.Selector)
	must(t, err, "the manager Deployment's selector")
	pods := &corev1.PodList{}
	must(t, b.client.List(t.Context(), pods, client.InNamespace(op.namespace), client.MatchingLabelsSelector{Selector: selector}), "listing the manager pods")
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

// checkManagerPods: every manager pod runs as a non-root user with a read-only root filesystem
// and is Ready (its readiness probe passes), and one of them holds the leader election Lease.
func (b *bed) checkManagerPods(t *testing.T, op *operatorInstall, image string) {
	t.Helper()
	b.waitDeploymentReady(t, op.namespace, op.deployment, op.replicas)
	pods := b.managerPods(t, op)
	if int32(len(pods)) != op.replicas {
		t.Fatalf("%d manager pods, want %d", len(pods), op.replicas)
	}
	for _, p := range pods {
		c := p.Spec.Containers[0]
		if c.Image != image {
			t.Errorf("pod %s runs %s, want %s", p.Name, c.Image, image)
		}
		nonRoot := p.Spec.SecurityContext != nil && p.Spec.SecurityContext.RunAsNonRoot != nil && *p.Spec.SecurityContext.RunAsNonRoot
		if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
			nonRoot = *c.SecurityContext.RunAsNonRoot
		}
		if !nonRoot {
			t.Errorf("pod %s does not require a non-root user", p.Name)
		}
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("pod %s: the manager's root filesystem is not read-only", p.Name)
		}
		if !podReady(&p) {
			t.Errorf("pod %s is not Ready", p.Name)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if !cs.Ready || cs.RestartCount != 0 {
				t.Errorf("pod %s: container %s ready=%v restarts=%d", p.Name, cs.Name, cs.Ready, cs.RestartCount)
			}
			// The kubelet reports the user the process runs as (Kubernetes 1.31 and later).
			if cs.User != nil && cs.User.Linux != nil && (cs.User.Linux.UID != 65532 || cs.User.Linux.GID != 65532) {
				t.Errorf("pod %s: container %s runs as uid %d gid %d, want 65532:65532", p.Name, cs.Name, cs.User.Linux.UID, cs.User.Linux.GID)
			}
			if cs.User != nil && cs.User.Linux != nil {
				t.Logf("manager pod %s runs as uid %d gid %d", p.Name, cs.User.Linux.UID, cs.User.Linux.GID)
			}
		}
	}
	leader := b.leaderPod(t, op)
	t.Logf("manager pods Ready: %d, leader %s", len(pods), leader)
}

// podReady reports whether the pod's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// leaderPod waits until a live manager pod holds the leader election Lease and returns its name.
func (b *bed) leaderPod(t *testing.T, op *operatorInstall) string {
	t.Helper()
	var leader string
	b.eventually(t, 2*time.Minute, "a live manager pod to hold the leader election Lease", func() (bool, string) {
		lease := &coordinationv1.Lease{}
		if err := b.client.Get(t.Context(), client.ObjectKey{Namespace: op.namespace, Name: operator.LeaderElectionID}, lease); err != nil {
			return false, err.Error()
		}
		if lease.Spec.HolderIdentity == nil {
			return false, "no holder"
		}
		holder := *lease.Spec.HolderIdentity
		for _, p := range b.managerPods(t, op) {
			// controller-runtime's identity is <hostname>_<uuid>, and a pod's hostname is its name.
			if strings.HasPrefix(holder, p.Name+"_") {
				leader = p.Name
				return true, ""
			}
		}
		return false, "holder " + holder + " is not a live manager pod"
	})
	return leader
}

// installWithHelm installs charts/mautic-operator as release mautic-operator with two replicas
// and the image built by `make image`.
func (b *bed) installWithHelm(t *testing.T) *operatorInstall {
	t.Helper()
	op := &operatorInstall{namespace: "mautic-operator-system", deployment: "mautic-operator-controller-manager", replicas: 2}
	out, err := b.helmCmd("install", "mautic-operator", filepath.Join(b.root, "charts", "mautic-operator"),
		"--namespace", op.namespace, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "image.repository="+managerRepository, "--set", "image.tag="+managerTag, "--set", "image.pullPolicy=Never",
		"--set", "replicas=2", "--set", "manager.minTokenInterval=5s")
	t.Cleanup(func() { b.uninstallHelm(t, op) })
	if err != nil {
		t.Fatalf("helm install: %v\n%s\n%s", err, out, b.podsReport(op.namespace))
	}
	t.Logf("helm install: %s", firstLines(out, 6))
	return op
}

// uninstallHelm removes the release, its namespace and the CRD (which the chart keeps).
func (b *bed) uninstallHelm(t *testing.T, op *operatorInstall) {
	if out, err := b.helmCmd("uninstall", "mautic-operator", "--namespace", op.namespace, "--wait", "--timeout", "2m"); err != nil {
		t.Errorf("helm uninstall: %v\n%s", err, out)
	}
	b.deleteNamespace(t, op.namespace)
	b.deleteCRD(t)
}

// deleteCRD deletes the MauticConnection CRD, so that the next install starts from nothing.
func (b *bed) deleteCRD(t *testing.T) {
	// It runs as a clean-up, after the test's context has ended.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "mauticconnections.auth.mautic-operator.dev"}}
	if err := client.IgnoreNotFound(b.client.Delete(ctx, crd)); err != nil {
		t.Errorf("deleting the CRD: %v", err)
	}
}

// installWithInstaller renders dist/install.yaml's content (`make build-installer`, written under
// bin/node instead of dist/) with the image built by `make image`, applies it, and scales the
// manager to two replicas with a --min-token-interval short enough for the suite's tokens.
func (b *bed) installWithInstaller(t *testing.T) *operatorInstall {
	t.Helper()
	op := &operatorInstall{namespace: "mautic-operator-system", deployment: "mautic-operator-controller-manager", replicas: 2}
	installer := filepath.Join(b.root, "bin", "node", "install.yaml")
	must(t, b.run("make", "-s", "build-installer", "IMG="+managerRepository+":"+managerTag, "INSTALLER="+installer), "make build-installer")
	t.Cleanup(func() {
		if out, err := b.kubectlCmd("delete", "--ignore-not-found", "--wait", "--timeout=2m", "-f", installer); err != nil {
			t.Errorf("deleting install.yaml: %v\n%s", err, out)
		}
		b.deleteNamespace(t, op.namespace)
		b.deleteCRD(t)
	})
	if out, err := b.kubectlCmd("apply", "--server-side", "-f", installer); err != nil {
		t.Fatalf("kubectl apply install.yaml: %v\n%s", err, out)
	}
	patch := `[{"op": "replace", "path": "/spec/replicas", "value": 2},` +
		`{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--min-token-interval=5s"}]`
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: op.namespace, Name: op.deployment}}
	must(t, b.client.Patch(t.Context(), deploy, client.RawPatch(types.JSONPatchType, []byte(patch))), "scaling the manager to two replicas")
	return op
}

// connection is a MauticConnection the suite applied and the Mautic client behind it.
type connection struct {
	key         client.ObjectKey
	tokenSecret string
	client      apiClient
}

// applyConnections applies two connections to site in namespace, as a user applies the samples:
// crm (ClientCredentials) and crm-ac (AuthorizationCode, seeded with a refresh token as `kubectl
// mautic authorize` would), both verified against /api/users/self and trusting the site's CA.
func (b *bed) applyConnections(t *testing.T, namespace string, site *mauticSite) (cc, ac *connection) {
	t.Helper()
	cc = b.applyConnection(t, namespace, "crm", authv1alpha1.GrantClientCredentials, site.newClient(t, "crm", true), "")
	acClient := site.newClient(t, "crm-ac", false)
	ac = b.applyConnection(t, namespace, "crm-ac", authv1alpha1.GrantAuthorizationCode, acClient, site.seedRefreshToken(t, acClient.ID))
	for _, c := range []*connection{cc, ac} {
		b.waitConnectionReady(t, c.key)
	}
	return cc, ac
}

// applyConnection creates the credentials Secret and the MauticConnection name.
func (b *bed) applyConnection(t *testing.T, namespace, name string, grant authv1alpha1.Grant, app apiClient, refreshToken string) *connection {
	t.Helper()
	data := map[string][]byte{authv1alpha1.ClientIDKey: []byte(app.ID), authv1alpha1.ClientSecretKey: []byte(app.Secret)}
	if refreshToken != "" {
		data[authv1alpha1.RefreshTokenKey] = []byte(refreshToken)
	}
	must(t, b.client.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-credentials", Namespace: namespace}, Data: data,
	}), "creating the credentials Secret of "+name)
	site := b.siteURL(t, namespace)
	conn := &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  site,
			Grant:                grant,
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: name + "-credentials"},
			TokenSecret:          &authv1alpha1.TokenSecretSpec{Name: name + "-token"},
			Verify:               &authv1alpha1.VerifySpec{Path: "/api/users/self"},
			TLS:                  &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: caSecretName}},
		},
	}
	must(t, b.client.Create(t.Context(), conn), "creating the MauticConnection "+name)
	return &connection{key: client.ObjectKeyFromObject(conn), tokenSecret: name + "-token", client: app}
}

// siteURL is the URL of the Mautic test server of namespace: https://<ClusterIP of mautic>.
func (b *bed) siteURL(t *testing.T, namespace string) string {
	t.Helper()
	svc := &corev1.Service{}
	must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: mauticName}, svc), "reading the Mautic Service")
	return "https://" + svc.Spec.ClusterIP
}

// waitConnectionReady waits until the connection is Ready for its latest generation.
func (b *bed) waitConnectionReady(t *testing.T, key client.ObjectKey) *authv1alpha1.MauticConnection {
	t.Helper()
	conn := &authv1alpha1.MauticConnection{}
	b.eventually(t, 2*time.Minute, "MauticConnection "+key.String()+" to be Ready", func() (bool, string) {
		if err := b.client.Get(t.Context(), key, conn); err != nil {
			return false, err.Error()
		}
		ready := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReadyCondition)
		return ready != nil && ready.Status == metav1.ConditionTrue && conn.Status.ObservedGeneration == conn.Generation,
			fmt.Sprintf("conditions %+v", conn.Status.Conditions)
	})
	return conn
}

// requestRefresh asks the operator for a new token now (the refresh-requested-at annotation, as
// `kubectl mautic refresh` sets it) and returns the annotation's value.
func (b *bed) requestRefresh(t *testing.T, key client.ObjectKey) string {
	t.Helper()
	value := time.Now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{authv1alpha1.RefreshRequestedAtAnnotation: value}}})
	must(t, err, "encoding the refresh request")
	conn := &authv1alpha1.MauticConnection{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	must(t, b.client.Patch(t.Context(), conn, client.RawPatch(types.MergePatchType, patch)), "requesting a refresh of "+key.String())
	return value
}

// waitRefreshHandled waits until the connection has handled the refresh request value and is Ready.
func (b *bed) waitRefreshHandled(t *testing.T, key client.ObjectKey, value string, timeout time.Duration) {
	t.Helper()
	conn := &authv1alpha1.MauticConnection{}
	b.eventually(t, timeout, "MauticConnection "+key.String()+" to handle the refresh request "+value+" and be Ready", func() (bool, string) {
		if err := b.client.Get(t.Context(), key, conn); err != nil {
			return false, err.Error()
		}
		ready := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReadyCondition)
		return conn.Status.LastHandledRefreshRequest == value && ready != nil && ready.Status == metav1.ConditionTrue,
			fmt.Sprintf("lastHandledRefreshRequest %q, conditions %+v", conn.Status.LastHandledRefreshRequest, conn.Status.Conditions)
	})
}

// restartDuringRefresh restarts the manager Deployment (what `kubectl rollout restart` does: a new
// restartedAt annotation on the pod template) while the leader's refresh of the
// AuthorizationCode connection ac is in flight: the Mautic test server has rotated the refresh
// token and holds its answer. The leader is the first pod the rollout stops (its
// pod-deletion-cost is the lowest), so it gets SIGTERM during the hold. Then the connection must
// stay Ready, no rotated refresh token may be presented again, and a further refresh must work
// with the refresh token the stopping leader stored, without a new authorization.
func (b *bed) restartDuringRefresh(t *testing.T, op *operatorInstall, site *mauticSite, ac *connection) {
	t.Helper()
	const hold = 25 * time.Second // less than the manager's default 30 s Mautic timeout
	ctx := t.Context()
	leader := b.leaderPod(t, op)
	costPatch := []byte(`{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-1000"}}}`)
	must(t, b.client.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: op.namespace, Name: leader}},
		client.RawPatch(types.MergePatchType, costPatch)), "making the leader the first pod the rollout stops")

	before := site.counters(t)
	site.holdNextTokenAnswer(t, ac.client.ID, hold)
	request := b.requestRefresh(t, ac.key)
	b.eventually(t, 30*time.Second, "the leader's refresh to reach the Mautic test server", func() (bool, string) {
		c := site.counters(t)
		return c.HeldAnswers == before.HeldAnswers+1, fmt.Sprintf("held answers %d", c.HeldAnswers)
	})
	holdStart := time.Now()
	restartPatch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
	must(t, b.client.Patch(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: op.namespace, Name: op.deployment}},
		client.RawPatch(types.StrategicMergePatchType, []byte(restartPatch))), "restarting the manager Deployment")

	var stoppedAfter time.Duration
	b.eventually(t, 2*time.Minute, "the rollout to stop the leader "+leader, func() (bool, string) {
		p := &corev1.Pod{}
		err := b.client.Get(ctx, client.ObjectKey{Namespace: op.namespace, Name: leader}, p)
		if client.IgnoreNotFound(err) != nil {
			return false, err.Error()
		}
		if err != nil || p.DeletionTimestamp != nil {
			stoppedAfter = time.Since(holdStart)
			return true, ""
		}
		return false, "leader not stopped yet"
	})
	if stoppedAfter >= hold {
		t.Fatalf("the rollout stopped the leader %s after the held token answer was sent (%s > %s): the restart did not fall within the refresh",
			leader, stoppedAfter.Round(time.Millisecond), hold)
	}
	t.Logf("rollout restart: the leader %s was stopped %s into its refresh, %s before Mautic's answer arrived",
		leader, stoppedAfter.Round(100*time.Millisecond), (hold - stoppedAfter).Round(100*time.Millisecond))

	b.waitRefreshHandled(t, ac.key, request, 2*time.Minute)
	b.waitDeploymentReady(t, op.namespace, op.deployment, op.replicas)
	// The refresh token the stopping leader stored is the one Mautic issued last: a further
	// refresh by the new leader spends it.
	again := b.requestRefresh(t, ac.key)
	b.waitRefreshHandled(t, ac.key, again, time.Minute)
	after := site.counters(t)
	if after.ReusedRefreshTokens != before.ReusedRefreshTokens {
		t.Errorf("%d rotated refresh tokens were presented again during the restart", after.ReusedRefreshTokens-before.ReusedRefreshTokens)
	}
	conn := &authv1alpha1.MauticConnection{}
	must(t, b.client.Get(ctx, ac.key, conn), "reading "+ac.key.String())
	if stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition); stalled != nil && stalled.Status == metav1.ConditionTrue {
		t.Errorf("the AuthorizationCode connection is Stalled after the restart: %s", stalled.Message)
	}
}

// scrapeMetrics reads the manager's metrics through its Service, over HTTPS, with the token of
// a ServiceAccount bound to the metrics-reader ClusterRole, as Prometheus does; without a token
// the manager refuses.
func (b *bed) scrapeMetrics(t *testing.T, op *operatorInstall, appsNamespace string) {
	t.Helper()
	ctx := t.Context()
	services := &corev1.ServiceList{}
	must(t, b.client.List(ctx, services, client.InNamespace(op.namespace)), "listing the manager's Services")
	var url string
	for _, s := range services.Items {
		for _, p := range s.Spec.Ports {
			if p.Name == "https" && strings.HasSuffix(s.Name, "metrics-service") {
				url = fmt.Sprintf("https://%s:%d/metrics", s.Spec.ClusterIP, p.Port)
			}
		}
	}
	if url == "" {
		t.Fatalf("no HTTPS metrics Service in %s", op.namespace)
	}
	roles := &rbacv1.ClusterRoleList{}
	must(t, b.client.List(ctx, roles), "listing ClusterRoles")
	var reader string
	for _, r := range roles.Items {
		if strings.HasPrefix(r.Name, "mautic-operator") && strings.HasSuffix(r.Name, "metrics-reader") {
			reader = r.Name
		}
	}
	if reader == "" {
		t.Fatal("no metrics-reader ClusterRole")
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "metrics-scraper", Namespace: appsNamespace}}
	must(t, b.client.Create(ctx, sa), "creating the scraper's ServiceAccount")
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "node-suite-metrics-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: appsNamespace}},
	}
	must(t, b.client.Create(ctx, binding), "binding the scraper to "+reader)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := client.IgnoreNotFound(b.client.Delete(ctx, binding)); err != nil {
			t.Errorf("deleting the scraper's ClusterRoleBinding: %v", err)
		}
	})
	tr, err := b.clientset.CoreV1().ServiceAccounts(appsNamespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	must(t, err, "requesting the scraper's token")

	// The manager serves metrics with the self-signed certificate controller-runtime makes.
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed by the manager
	get := func(token string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	var body string
	b.eventually(t, time.Minute, "a scrape of "+url+" with the ServiceAccount token", func() (bool, string) {
		status, got, err := get(tr.Status.Token)
		if err != nil {
			return false, err.Error()
		}
		body = got
		return status == http.StatusOK && strings.Contains(body, "mautic_operator_"), fmt.Sprintf("HTTP %d: %.200s", status, got)
	})
	status, _, err := get("")
	must(t, err, "scraping without a token")
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Errorf("a scrape without a token got HTTP %d, want 401 or 403", status)
	}
	series := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "mautic_operator_") {
			series++
		}
	}
	t.Logf("metrics scraped through the Service with a ServiceAccount token: %d mautic_operator_ samples; without a token: HTTP %d", series, status)
}

// firstLines returns the first n lines of s.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// writeReport appends markdown to the report file of MAUTIC_NODE_REPORT, when set.
func (b *bed) writeReport(t *testing.T, markdown string) {
	t.Helper()
	if b.reportPath == "" {
		return
	}
	must(t, os.MkdirAll(filepath.Dir(b.reportPath), 0o755), "creating the report's directory")
	f, err := os.OpenFile(b.reportPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err, "opening the report")
	defer func() { _ = f.Close() }()
	_, err = f.WriteString(markdown)
	must(t, err, "writing the report")
}
