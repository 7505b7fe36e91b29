package controller_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// apiRequests counts a manager's requests to the API server by verb and resource, e.g.
// "get secrets", "patch mauticconnections/status", "list secrets".
type apiRequests struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.RoundTripper
}

func (a *apiRequests) RoundTrip(req *http.Request) (*http.Response, error) {
	a.mu.Lock()
	a.counts[requestKind(req)]++
	a.mu.Unlock()
	return a.next.RoundTrip(req)
}

// requestKind names a request as "<verb> <resource>[/<subresource>]".
func requestKind(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	// /api/v1/namespaces/NS/RESOURCE[/NAME[/SUB]] or /apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME[/SUB]]
	for i, part := range parts {
		if part != "namespaces" || i+2 >= len(parts) {
			continue
		}
		rest := parts[i+2:]
		verb := strings.ToLower(req.Method)
		switch {
		case len(rest) == 1 && req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true":
			verb = "watch"
		case len(rest) == 1 && req.Method == http.MethodGet:
			verb = "list"
		}
		resource := rest[0]
		if len(rest) == 3 {
			resource += "/" + rest[2]
		}
		return verb + " " + resource
	}
	return strings.ToLower(req.Method) + " " + req.URL.Path
}

// snapshot returns the counts so far.
func (a *apiRequests) snapshot() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	copied := map[string]int{}
	for k, v := range a.counts {
		copied[k] = v
	}
	return copied
}

// since returns the counts that grew after before, without watches, lists and discovery.
func (a *apiRequests) since(before map[string]int) map[string]int {
	grown := map[string]int{}
	for kind, n := range a.snapshot() {
		discovery := strings.HasPrefix(kind, "get /api")
		if d := n - before[kind]; d > 0 && !discovery && !strings.HasPrefix(kind, "watch ") && !strings.HasPrefix(kind, "list ") {
			grown[kind] = d
		}
	}
	return grown
}

// A manager restarted with valid tokens in place makes no token request, writes nothing and reads
// no Secret one by one: what it needs comes from the caches it lists anyway. A refresh then costs
// one token request, one token Secret write and at most one status patch, and the reconciles its
// own writes trigger read and write nothing more.
func TestAPICostOfARestartAndARefresh(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createCredentials(e.clientCredentials())
	const connections = 3
	for i := range connections {
		conn := e.newConnection()
		conn.Name = fmt.Sprintf("crm-%d", i)
		e.createConnection(conn)
	}
	g.Eventually(func() int { return countReady(e) }).WithTimeout(eventually).Should(Equal(connections))
	time.Sleep(2 * time.Second) // the reconciles that the first tokens' writes trigger settle

	requests := &apiRequests{counts: map[string]int{}}
	e.restartManager(func(next http.RoundTripper) http.RoundTripper { requests.next = next; return requests },
		func(o *operator.Options) { o.MinTokenInterval = -1 })
	tokenRequests := e.Mautic.TokenRequests()
	g.Eventually(func() int { return requests.snapshot()["watch mauticconnections"] }).WithTimeout(eventually).Should(BeNumerically(">", 0))
	time.Sleep(3 * time.Second) // every connection is reconciled once the caches synced
	g.Expect(requests.since(map[string]int{})).To(BeEmpty(), "a restart with valid tokens makes no request but lists and watches")
	g.Expect(e.Mautic.TokenRequests()).To(Equal(tokenRequests))

	// One refresh, requested with the annotation.
	before := requests.snapshot()
	conn := &authv1alpha1.MauticConnection{}
	g.Expect(k8sClient.Get(e.Ctx, client.ObjectKey{Namespace: e.Namespace, Name: "crm-0"}, conn)).To(Succeed())
	metav1.SetMetaDataAnnotation(&conn.ObjectMeta, authv1alpha1.RefreshRequestedAtAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
	g.Expect(k8sClient.Update(e.Ctx, conn)).To(Succeed())
	g.Eventually(e.Mautic.TokenRequests).WithTimeout(eventually).Should(Equal(tokenRequests + 1))
	time.Sleep(3 * time.Second) // the reconciles the refresh's own writes trigger
	cost := requests.since(before)
	g.Expect(cost["patch secrets"]).To(Equal(1), "one token Secret write; all: %v", cost)
	g.Expect(cost["patch mauticconnections/status"]).To(BeNumerically("<=", 1), "at most one status patch; all: %v", cost)
	g.Expect(cost["get secrets"]).To(BeNumerically("<=", 1), "the credentials, read once for the token request after the restart; all: %v", cost)
	delete(cost, "get secrets")
	delete(cost, "patch secrets")
	delete(cost, "patch mauticconnections/status")
	delete(cost, "post events")
	g.Expect(cost).To(BeEmpty(), "nothing else")
	g.Expect(e.Mautic.TokenRequests()).To(Equal(tokenRequests+1), "one token request")
}

// A new connection reads the Secrets it needs once: its credentials for the token request, and a CA
// Secret once for every connection that names it. That no token Secret exists yet the metadata
// watch already says, so nothing reads it. Each connection costs one token request, one token
// Secret write and one status patch.
func TestAPICostOfNewConnections(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	tlsServer := e.useTLSServer()
	e.createCASecret("mautic-ca", tlsServer.CACertPEM())
	requests := &apiRequests{counts: map[string]int{}}
	e.restartManager(func(next http.RoundTripper) http.RoundTripper { requests.next = next; return requests })
	g.Eventually(func() int { return requests.snapshot()["watch mauticconnections"] }).WithTimeout(eventually).Should(BeNumerically(">", 0))

	const connections = 3
	before := requests.snapshot()
	for i := range connections {
		conn := e.newConnection()
		conn.Name = fmt.Sprintf("crm-%d", i)
		withPrivateCA(conn, "mautic-ca")
		e.createConnection(conn)
	}
	g.Eventually(func() int { return countReady(e) }).WithTimeout(eventually).Should(Equal(connections))
	time.Sleep(3 * time.Second) // the reconciles the first tokens' writes trigger
	cost := requests.since(before)
	g.Expect(cost["get secrets"]).To(Equal(connections+1), "each connection's credentials and the shared CA once; all: %v", cost)
	g.Expect(cost["patch secrets"]).To(Equal(connections), "one token Secret write each; all: %v", cost)
	g.Expect(cost["patch mauticconnections/status"]).To(Equal(connections), "one status patch each; all: %v", cost)
	g.Expect(cost["post events"]).To(Equal(connections), "one event each; all: %v", cost)
	g.Expect(e.Mautic.TokenRequests()).To(Equal(connections), "one token request each")
	for _, kind := range []string{"get secrets", "patch secrets", "patch mauticconnections/status", "post events"} {
		delete(cost, kind)
	}
	g.Expect(cost).To(BeEmpty(), "nothing else")
}

// countReady counts the test namespace's connections whose Ready condition is True.
func countReady(e *env) int {
	list := &authv1alpha1.MauticConnectionList{}
	if err := k8sClient.List(e.Ctx, list, client.InNamespace(e.Namespace)); err != nil {
		return 0
	}
	ready := 0
	for _, conn := range list.Items {
		if c := condition(&conn, authv1alpha1.ReadyCondition); c != nil && c.Status == metav1.ConditionTrue {
			ready++
		}
	}
	return ready
}
