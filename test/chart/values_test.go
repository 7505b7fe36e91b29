package chart

import (
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// valueSets are the value combinations lint and render are run over.
var valueSets = []struct {
	name string
	args []string
}{
	{"defaults", nil},
	{"namespaced", []string{"--set", "rbac.namespaced=true", "--set", "crds.enabled=false"}},
	{"replicas 2", []string{"--set", "replicas=2", "--set", "leaderElection.enabled=false", "--set", "podDisruptionBudget.enabled=true"}},
	{"monitoring with the CRDs", []string{"--api-versions", "monitoring.coreos.com/v1", "--set", "monitoring.serviceMonitor.enabled=true",
		"--set", "monitoring.prometheusRule.enabled=true"}},
	{"monitoring without the CRDs", []string{"--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true"}},
	{"networkPolicy", []string{"--set", "networkPolicy.enabled=true"}},
	{"crds disabled", []string{"--set", "crds.enabled=false"}},
	{"everything set", []string{"--set", "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"--set", "watchNamespaces={a,b}", "--set", "manager.mauticTimeout=80s", "--set", "terminationGracePeriodSeconds=125",
		"--set", "manager.maxConcurrentReconciles=32", "--set", "extraArgs={--zap-encoder=console}",
		"--set", "topologySpreadConstraints[0].maxSkew=1", "--set", "topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
		"--set", "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway"}},
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir()}, lintArgs(vs.args)...)
			out, err := runHelm(t, args...)
			NewWithT(t).Expect(err).NotTo(HaveOccurred(), string(out))
		})
	}
}

// lintArgs drops the template-only flags (--api-versions) helm lint does not take.
func lintArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--api-versions" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func TestValueSets(t *testing.T) {
	render := func(t *testing.T, name string) []object {
		for _, vs := range valueSets {
			if vs.name == name {
				return helmTemplate(t, "mautic-operator-system", vs.args...)
			}
		}
		t.Fatalf("no value set %q", name)
		return nil
	}
	t.Run("defaults", func(t *testing.T) {
		g := NewWithT(t)
		objects := render(t, "defaults")
		g.Expect(kinds(objects)).To(Equal(map[string]int{"CustomResourceDefinition": 1, "ServiceAccount": 1, "ClusterRole": 5,
			"ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1, "Service": 1, "Deployment": 1}))
		crd := find(objects, "CustomResourceDefinition", "mauticconnections.auth.mautic-operator.dev")
		g.Expect(get(crd, "metadata", "annotations", "helm.sh/resource-policy")).To(Equal("keep"))
		pod := get(find(objects, "Deployment", "mautic-operator-controller-manager"), "spec", "template", "spec")
		g.Expect(get(pod, "securityContext", "runAsNonRoot")).To(BeTrue())
		g.Expect(get(pod, "securityContext", "seccompProfile", "type")).To(Equal("RuntimeDefault"))
		g.Expect(get(pod, "containers", 0, "securityContext", "readOnlyRootFilesystem")).To(BeTrue())
		g.Expect(get(pod, "containers", 0, "securityContext", "capabilities", "drop")).To(Equal([]any{"ALL"}))
		g.Expect(get(pod, "containers", 0, "image")).To(Equal("ghcr.io/mautic-operator/mautic-operator:dev"))
	})
	t.Run("namespaced", func(t *testing.T) {
		g := NewWithT(t)
		objects := render(t, "namespaced")
		g.Expect(kinds(objects)).NotTo(HaveKey("ClusterRole"))
		g.Expect(kinds(objects)).NotTo(HaveKey("ClusterRoleBinding"))
		g.Expect(kinds(objects)).NotTo(HaveKey("CustomResourceDefinition"))
		g.Expect(managerArgs(t, objects)).To(ContainElements("--watch-namespaces=$(POD_NAMESPACE)", "--metrics-secure=false",
			"--metrics-bind-address=:8080"))
	})
	t.Run("replicas 2 forces leader election", func(t *testing.T) {
		g := NewWithT(t)
		objects := render(t, "replicas 2")
		g.Expect(managerArgs(t, objects)).To(ContainElement("--leader-elect"))
		g.Expect(find(objects, "Role", "mautic-operator-leader-election-role")).NotTo(BeNil())
		g.Expect(get(find(objects, "PodDisruptionBudget", "mautic-operator-controller-manager"), "spec", "minAvailable")).
			To(BeNumerically("==", 1))
	})
	t.Run("monitoring with the CRDs", func(t *testing.T) {
		g := NewWithT(t)
		k := kinds(render(t, "monitoring with the CRDs"))
		g.Expect(k).To(HaveKeyWithValue("ServiceMonitor", 1))
		g.Expect(k).To(HaveKeyWithValue("PrometheusRule", 1))
	})
	t.Run("monitoring without the CRDs is skipped", func(t *testing.T) {
		g := NewWithT(t)
		k := kinds(render(t, "monitoring without the CRDs"))
		g.Expect(k).NotTo(HaveKey("ServiceMonitor"))
		g.Expect(k).NotTo(HaveKey("PrometheusRule"))
	})
	t.Run("networkPolicy", func(t *testing.T) {
		g := NewWithT(t)
		policy := find(render(t, "networkPolicy"), "NetworkPolicy", "mautic-operator-controller-manager")
		g.Expect(policy).NotTo(BeNil())
		g.Expect(get(policy, "spec", "policyTypes")).To(Equal([]any{"Ingress", "Egress"}))
		g.Expect(get(policy, "spec", "egress", 1, "ports", 0, "port")).To(BeNumerically("==", 443), "HTTPS to Mautic")
	})
	t.Run("crds disabled", func(t *testing.T) {
		NewWithT(t).Expect(kinds(render(t, "crds disabled"))).NotTo(HaveKey("CustomResourceDefinition"))
	})
	t.Run("everything set", func(t *testing.T) {
		g := NewWithT(t)
		objects := render(t, "everything set")
		args := managerArgs(t, objects)
		g.Expect(args).To(ContainElements("--watch-namespaces=a,b", "--mautic-timeout=80s", "--max-concurrent-reconciles=32",
			"--zap-encoder=console"))
		pod := get(find(objects, "Deployment", "mautic-operator-controller-manager"), "spec", "template", "spec")
		g.Expect(get(pod, "containers", 0, "image")).To(HavePrefix("ghcr.io/mautic-operator/mautic-operator@sha256:"))
		g.Expect(get(pod, "topologySpreadConstraints", 0, "labelSelector", "matchLabels", "control-plane")).To(Equal("controller-manager"))
	})
}

// A rollout must let a refresh that claimed its refresh token finish: the chart's grace period
// exceeds the manager's graceful shutdown (the critical section plus a 10s margin) and the 10s
// drain after it, for the default --mautic-timeout and for the longest one; a shorter grace period
// is refused at render time.
func TestGracePeriodOutlastsAClaimedRefresh(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		args    []string
	}{
		{mautic.DefaultTimeout, nil},
		{80 * time.Second, []string{"--set", "manager.mauticTimeout=80s", "--set", "terminationGracePeriodSeconds=125"}},
	} {
		g := NewWithT(t)
		objects := helmTemplate(t, "mautic-operator-system", c.args...)
		grace := get(find(objects, "Deployment", "mautic-operator-controller-manager"), "spec", "template", "spec",
			"terminationGracePeriodSeconds").(float64)
		g.Expect(time.Duration(grace) * time.Second).To(BeNumerically(">", controller.CriticalSectionTimeout(c.timeout)+20*time.Second))
	}
	out, err := runHelm(t, "template", "x", chartDir(), "--set", "manager.mauticTimeout=80s")
	NewWithT(t).Expect(err).To(HaveOccurred())
	NewWithT(t).Expect(string(out)).To(ContainSubstring("set it to at least 121"))
}

// Every leaf of values.yaml is documented in the chart's README and typed in values.schema.json.
func TestEveryValueDocumentedAndInSchema(t *testing.T) {
	g := NewWithT(t)
	values := readMap(t, "values.yaml")
	schema := readMap(t, "values.schema.json")
	readme := readText(t, "README.md")
	keys := leafKeys("", values)
	g.Expect(len(keys)).To(BeNumerically(">", 50))
	for _, key := range keys {
		g.Expect(readme).To(ContainSubstring("| `"+key+"` |"), "README.md documents %s in its values table", key)
		g.Expect(schemaHas(schema, strings.Split(key, "."))).To(BeTrue(), "values.schema.json has %s", key)
	}
	g.Expect(schema["additionalProperties"]).To(BeFalse(), "a misspelt top-level value is an error")
	g.Expect(slices.Contains(keys, "image.repository")).To(BeTrue())
}
