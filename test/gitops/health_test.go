package gitops_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv/gitopshealth"
)

// TestNewConnection: before the operator has written a status, Argo CD reports Progressing; once
// a token is published, Healthy, and kstatus Current.
func TestNewConnection(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createCredentials(e.App.Secret)
	e.createConnection(nil)

	fresh := e.live(g)
	g.Expect(condition(fresh, authv1alpha1.ReadyCondition)).To(BeNil(), "no manager watches the namespace yet")
	g.Expect(health(t, fresh)).To(Equal(argoHealth{
		Status: "Progressing", Message: "Waiting for the operator to observe generation 1",
	}))
	t.Run("kstatus", func(t *testing.T) {
		result := computeKstatus(t, fresh)
		if _, found, _ := unstructured.NestedInt64(fresh.Object, "status", "observedGeneration"); !found {
			// kstatus judges generation only against a status.observedGeneration that exists, and a
			// resource with no conditions at all is Current ("Resource is current"). The API server
			// drops status on create, so a connection nobody has reconciled yet looks done to Flux
			// until the CRD defaults status.observedGeneration (to 0) or the operator writes it.
			t.Skipf("kstatus computes %s (%q) for a connection without status; InProgress needs "+
				"status.observedGeneration defaulted by the CRD", result.Status, result.Message)
		}
		NewWithT(t).Expect(result.Status).To(Equal(kstatus.InProgressStatus), result.Message)
	})

	e.startManager()
	ready := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.ReadyCondition)).To(HaveKeyWithValue("status", "True"))
		g.Expect(observed(u)).To(BeTrue())
	})
	g.Expect(health(t, ready)).To(Equal(argoHealth{
		Status: "Healthy", Message: condition(ready, authv1alpha1.ReadyCondition)["message"].(string),
	}))
	g.Expect(health(t, ready).Message).To(HavePrefix("Token valid until "))
	g.Expect(computeKstatus(t, ready).Status).To(Equal(kstatus.CurrentStatus))
}

// TestStalledConnection: a client secret Mautic refuses is Degraded in Argo CD, with the Stalled
// reason and message, and Failed for kstatus.
func TestStalledConnection(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createCredentials("not-the-client-secret")
	e.createConnection(nil)
	e.startManager()

	stalled := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.StalledCondition)).To(And(
			HaveKeyWithValue("status", "True"), HaveKeyWithValue("reason", authv1alpha1.InvalidClientReason)))
		g.Expect(observed(u)).To(BeTrue())
	})
	stalledMessage := condition(stalled, authv1alpha1.StalledCondition)["message"].(string)
	g.Expect(health(t, stalled)).To(Equal(argoHealth{
		Status: "Degraded", Message: authv1alpha1.InvalidClientReason + ": " + stalledMessage,
	}))
	result := computeKstatus(t, stalled)
	g.Expect(result.Status).To(Equal(kstatus.FailedStatus), result.Message)
	g.Expect(result.Message).To(Equal(stalledMessage))
}

// TestExpiredTokenWhileMauticFails: a token that expired while Mautic answers 500 is Degraded in
// Argo CD. kstatus has no such state: Reconciling=True makes it InProgress, so Flux reports it only
// when its health-check timeout runs out.
func TestExpiredTokenWhileMauticFails(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newReadyEnv(t, 3*time.Second, nil)
	e.Mautic.InjectFault(mautictest.FaultServerError, -1)

	expired := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.ReadyCondition)).To(And(
			HaveKeyWithValue("status", "False"), HaveKeyWithValue("reason", authv1alpha1.TokenExpiredReason)))
		g.Expect(condition(u, authv1alpha1.ReconcilingCondition)).To(HaveKeyWithValue("status", "True"))
		g.Expect(observed(u)).To(BeTrue())
	})
	readyMessage := condition(expired, authv1alpha1.ReadyCondition)["message"].(string)
	g.Expect(health(t, expired)).To(Equal(argoHealth{
		Status: "Degraded", Message: authv1alpha1.TokenExpiredReason + ": " + readyMessage,
	}))
	g.Expect(readyMessage).To(ContainSubstring("refreshing failed"))
	g.Expect(computeKstatus(t, expired).Status).To(Equal(kstatus.InProgressStatus))
}

// TestTransientRetryWithValidToken: while a refresh is retried and the published token still works,
// Argo CD stays Healthy and says that a retry is under way. kstatus reads Reconciling=True as
// InProgress.
func TestTransientRetryWithValidToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// Renewal after a tenth of a long lifetime: a wide window in which the token works and refreshing fails.
	e := newReadyEnv(t, 60*time.Second, func(c *authv1alpha1.MauticConnection) {
		c.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBeforePercentage: ptr.To[int32](90)}
	})
	e.Mautic.InjectFault(mautictest.FaultServerError, -1)

	retrying := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.ReconcilingCondition)).To(And(
			HaveKeyWithValue("status", "True"), HaveKeyWithValue("reason", authv1alpha1.RefreshFailedReason)))
		g.Expect(condition(u, authv1alpha1.ReadyCondition)).To(HaveKeyWithValue("status", "True"))
		g.Expect(observed(u)).To(BeTrue())
	})
	got := health(t, retrying)
	g.Expect(got.Status).To(Equal("Healthy"))
	g.Expect(got.Message).To(Equal(condition(retrying, authv1alpha1.ReadyCondition)["message"].(string) +
		"; the token works while a refresh is retried: " +
		condition(retrying, authv1alpha1.ReconcilingCondition)["message"].(string)))
	g.Expect(got.Message).To(ContainSubstring("Attempt "))
	g.Expect(computeKstatus(t, retrying).Status).To(Equal(kstatus.InProgressStatus))
}

// TestSuspendedConnection: spec.suspend is Suspended in Argo CD, before and after the operator
// observes it and after the token expires; kstatus follows Ready.
func TestSuspendedConnection(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newReadyEnv(t, 3*time.Second, nil)

	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`))
	suspended := e.live(g)
	g.Expect(e.Client.Patch(e.Ctx, suspended, patch)).To(Succeed())
	g.Expect(health(t, suspended)).To(Equal(argoHealth{
		Status: "Suspended", Message: "spec.suspend is true: the operator requests no tokens and writes no Secrets",
	}))

	suspended = e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(u.GetGeneration()).To(Equal(int64(2)))
		g.Expect(observed(u)).To(BeTrue())
	})
	g.Expect(health(t, suspended).Status).To(Equal("Suspended"))
	if condition(suspended, authv1alpha1.ReadyCondition)["status"] == "True" {
		g.Expect(computeKstatus(t, suspended).Status).To(Equal(kstatus.CurrentStatus))
	}

	lapsed := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.ReadyCondition)).To(And(
			HaveKeyWithValue("status", "False"), HaveKeyWithValue("reason", authv1alpha1.SuspendedReason)))
	})
	g.Expect(health(t, lapsed)).To(Equal(argoHealth{
		Status: "Suspended", Message: condition(lapsed, authv1alpha1.ReadyCondition)["message"].(string),
	}))
	g.Expect(health(t, lapsed).Message).To(HavePrefix("spec.suspend is true: the token expired at "))
	g.Expect(computeKstatus(t, lapsed).Status).To(Equal(kstatus.InProgressStatus))
}

// TestRoutineRefreshes: across several routine refreshes, every read of the live object is Healthy
// for Argo CD and Current for kstatus, so neither Argo CD nor Flux sees a refresh as a change.
func TestRoutineRefreshes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newReadyEnv(t, 3*time.Second, func(c *authv1alpha1.MauticConnection) {
		c.Spec.Refresh = &authv1alpha1.RefreshSpec{RenewBeforePercentage: ptr.To[int32](50)}
	})

	// Sample for 8s at least, and on until three refreshes were seen: a busy machine may be slower.
	const minRefreshes, samplePeriod = 3, 8 * time.Second
	start := time.Now()
	tokens := []string{}
	samples := 0
	for time.Since(start) < samplePeriod || len(tokens) <= minRefreshes {
		g.Expect(time.Since(start)).To(BeNumerically("<", eventually+samplePeriod),
			"saw %d refreshes", max(len(tokens)-1, 0))
		u := e.live(g)
		samples++
		described := describe(u)
		result := computeKstatus(t, u)
		g.Expect(result.Status).To(Equal(kstatus.CurrentStatus), "sample %d: %s; %s", samples, result.Message, described)
		g.Expect(health(t, u).Status).To(Equal("Healthy"), "sample %d: %s", samples, described)
		if token := e.accessToken(g); token != "" && (len(tokens) == 0 || tokens[len(tokens)-1] != token) {
			tokens = append(tokens, token)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d samples over %s, %d refreshes", samples, time.Since(start).Round(time.Millisecond), len(tokens)-1)
}

// TestRefreshAction: the refresh action that Argo CD discovers sets the refresh-requested-at
// annotation and nothing else, and applying its result makes the operator publish a new token.
func TestRefreshAction(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	e := newEnv(t)
	e.createCredentials(e.App.Secret)
	e.createConnection(nil)
	e.startManager()
	var before string
	original := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		g.Expect(condition(u, authv1alpha1.ReadyCondition)).To(HaveKeyWithValue("status", "True"))
		before = e.accessToken(g)
		g.Expect(before).NotTo(BeEmpty())
	})

	g.Expect(discover(t, original)).To(Equal(map[string]any{"refresh": map[string]any{"disabled": false}}))

	returned, err := gitopshealth.ArgoCDAction(original.Object, "refresh")
	g.Expect(err).NotTo(HaveOccurred(), "action.lua returns the object")
	modified := &unstructured.Unstructured{Object: returned}
	requestedAt := modified.GetAnnotations()[authv1alpha1.RefreshRequestedAtAnnotation]
	when, err := time.Parse(time.RFC3339, requestedAt)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(requestedAt).To(MatchRegexp(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`))
	g.Expect(when).To(BeTemporally("~", time.Now(), 5*time.Second))

	// Argo CD applies an action's result as a merge patch against the live object.
	patch := client.MergeFrom(original)
	data, err := patch.Data(modified)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(data).To(MatchJSON(`{"metadata":{"annotations":{"` + authv1alpha1.RefreshRequestedAtAnnotation + `":"` + requestedAt + `"}}}`))
	g.Expect(e.Client.Patch(e.Ctx, modified, patch)).To(Succeed())

	refreshed := e.waitLive(func(g Gomega, u *unstructured.Unstructured) {
		handled, _, _ := unstructured.NestedString(u.Object, "status", "lastHandledRefreshRequest")
		g.Expect(handled).To(Equal(requestedAt))
		g.Expect(e.accessToken(g)).NotTo(Equal(before))
	})
	g.Expect(health(t, refreshed).Status).To(Equal("Healthy"))
	g.Expect(computeKstatus(t, refreshed).Status).To(Equal(kstatus.CurrentStatus))
}

// TestArgoCDConfigMap: the argocd-cm snippet embeds exactly the Lua files, and the scripts use
// nothing Argo CD withholds from argocd-cm scripts (the string library and string methods).
func TestArgoCDConfigMap(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	argoConfigMapPath := repoPath(g, gitopshealth.ArgoCDConfigMap)
	healthScript := repoPath(g, gitopshealth.HealthScript)
	discoveryScript := repoPath(g, gitopshealth.DiscoveryScript)
	refreshScript := repoPath(g, gitopshealth.ActionScript("refresh"))
	raw, err := os.ReadFile(argoConfigMapPath)
	g.Expect(err).NotTo(HaveOccurred())
	cm := &corev1.ConfigMap{}
	g.Expect(yaml.UnmarshalStrict(raw, cm)).To(Succeed())
	g.Expect(cm.Name).To(Equal("argocd-cm"))

	read := func(path string) string {
		content, err := os.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(content)).NotTo(MatchRegexp(`\bstring\.|[\w\])]:\w+\(`), "%s uses the string library", path)
		return string(content)
	}
	const key = "auth.mautic-operator.dev_MauticConnection"
	g.Expect(cm.Data).To(HaveKeyWithValue("resource.customizations.health."+key, read(healthScript)),
		"the health check in %s differs from %s", argoConfigMapPath, healthScript)

	var actions struct {
		Discovery   string `json:"discovery.lua"`
		Definitions []struct {
			Name   string `json:"name"`
			Action string `json:"action.lua"`
		} `json:"definitions"`
	}
	g.Expect(cm.Data).To(HaveKey("resource.customizations.actions." + key))
	g.Expect(yaml.UnmarshalStrict([]byte(cm.Data["resource.customizations.actions."+key]), &actions)).To(Succeed())
	g.Expect(actions.Discovery).To(Equal(read(discoveryScript)),
		"discovery.lua in %s differs from %s", argoConfigMapPath, discoveryScript)
	g.Expect(actions.Definitions).To(HaveLen(1))
	g.Expect(actions.Definitions[0].Name).To(Equal("refresh"))
	g.Expect(actions.Definitions[0].Action).To(Equal(read(refreshScript)),
		"the refresh action in %s differs from %s", argoConfigMapPath, refreshScript)

	// Every action discovery lists has a definition, in the files' layout too.
	discovered := discover(t, &unstructured.Unstructured{Object: map[string]any{}})
	listed := make([]string, 0, len(discovered))
	for name := range discovered {
		listed = append(listed, name)
		g.Expect(filepath.Join(filepath.Dir(discoveryScript), name, "action.lua")).To(BeAnExistingFile())
	}
	g.Expect(listed).To(ConsistOf("refresh"))
}

// condition returns the live object's condition of the given type as a map, or nil.
func condition(u *unstructured.Unstructured, conditionType string) map[string]any {
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok && m["type"] == conditionType {
			return m
		}
	}
	return nil
}

// observed is true when the status describes the object's current generation.
func observed(u *unstructured.Unstructured) bool {
	observedGeneration, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return found && observedGeneration == u.GetGeneration()
}

// computeKstatus computes the object's status as Flux (kstatus) does.
func computeKstatus(t *testing.T, u *unstructured.Unstructured) *kstatus.Result {
	t.Helper()
	result, err := gitopshealth.KStatus(u.Object)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return result
}

// describe renders the generation and status for failure messages.
func describe(u *unstructured.Unstructured) string {
	status, _ := json.Marshal(u.Object["status"])
	return fmt.Sprintf("generation %d, status %s", u.GetGeneration(), status)
}

// argoHealth is what an Argo CD health check returns.
type argoHealth struct {
	Status  string
	Message string
}

// health runs the Argo CD health check on a live object.
func health(t *testing.T, u *unstructured.Unstructured) argoHealth {
	t.Helper()
	status, message, err := gitopshealth.ArgoCDHealth(u.Object)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return argoHealth{Status: status, Message: message}
}

// discover runs the Argo CD action discovery script on an object.
func discover(t *testing.T, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	actions, err := gitopshealth.ArgoCDActions(u.Object)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return actions
}

// repoPath returns the absolute path of a file named relative to the repository root.
func repoPath(g Gomega, relative string) string {
	path, err := gitopshealth.Path(relative)
	g.Expect(err).NotTo(HaveOccurred())
	return path
}
