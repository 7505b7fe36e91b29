package chart

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// defaultImage is the image `make build-installer` and `make deploy` set by default (IMG), which
// the chart renders with image.tag=dev.
const defaultImage = "ghcr.io/mautic-operator/mautic-operator:dev"

// helmOnly are the labels and annotations only Helm sets; normalize removes them.
var helmOnly = []string{"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version",
	"app.kubernetes.io/managed-by", "helm.sh/resource-policy"}

// normalize removes Helm's own labels and annotations (and kustomize's managed-by label) from
// every map, and the Namespace object, which Helm leaves to `helm install --create-namespace`; it
// returns the objects by kind/namespace/name.
func normalize(objects []object) map[string]object {
	out := map[string]object{}
	for _, obj := range objects {
		if obj["kind"] == "Namespace" {
			continue
		}
		stripKeys(obj)
		key := fmt.Sprintf("%s/%v/%v", obj["kind"], get(obj, "metadata", "namespace"), get(obj, "metadata", "name"))
		out[key] = obj
	}
	return out
}

// stripKeys deletes the helmOnly keys from every map under v, and maps left empty by it.
func stripKeys(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range helmOnly {
			delete(x, k)
		}
		for k, child := range x {
			stripKeys(child)
			if m, ok := child.(map[string]any); ok && len(m) == 0 && (k == "labels" || k == "annotations") {
				delete(x, k)
			}
		}
	case []any:
		for _, child := range x {
			stripKeys(child)
		}
	}
}

// kustomize renders a config/ directory with kubectl and sets the manager image as make does.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		kubectl = "kubectl"
	}
	out, err := exec.CommandContext(t.Context(), kubectl, "kustomize", filepath.Join(repoRoot(), "config", dir)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s: %v", dir, err)
	}
	return parseObjects(t, []byte(strings.ReplaceAll(string(out), "image: controller:latest", "image: "+defaultImage)))
}

// expectSameObjects compares two normalised object sets key by key, so a failure names the object.
func expectSameObjects(t *testing.T, chart, want map[string]object, source string) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(sortedKeys(chart)).To(Equal(sortedKeys(want)), "the chart renders the objects of %s", source)
	for key, obj := range want {
		g.Expect(chart[key]).To(Equal(obj), "%s differs between the chart and %s", key, source)
	}
}

// sortedKeys are a map's keys in order.
func sortedKeys(m map[string]object) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestDefaultValuesRenderConfigDefault(t *testing.T) {
	chart := normalize(helmTemplate(t, "mautic-operator-system", "--set", "image.tag=dev"))
	expectSameObjects(t, chart, normalize(kustomize(t, "default")), "kubectl kustomize config/default")
}

func TestNamespacedModeRendersConfigNamespaced(t *testing.T) {
	chart := normalize(helmTemplate(t, "mautic-tenant", "--set", "image.tag=dev", "--set", "rbac.namespaced=true",
		"--set", "crds.enabled=false"))
	// config/namespaced builds on config/manager and config/rbac only; the chart also gives the
	// plain-HTTP metrics port its Service.
	service := "Service/mautic-tenant/mautic-operator-controller-manager-metrics-service"
	NewWithT(t).Expect(get(chart[service], "spec", "ports", 0, "port")).To(BeNumerically("==", 8080))
	delete(chart, service)
	expectSameObjects(t, chart, normalize(kustomize(t, "namespaced")), "kubectl kustomize config/namespaced")
}

func TestMonitoringRendersConfigPrometheus(t *testing.T) {
	g := NewWithT(t)
	chart := normalize(helmTemplate(t, "mautic-operator-system", "--api-versions", "monitoring.coreos.com/v1",
		"--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true"))
	want := normalize(kustomizeWithPrometheus(t))
	for _, key := range []string{"PrometheusRule/mautic-operator-system/mautic-operator-alerts",
		"ServiceMonitor/mautic-operator-system/mautic-operator-controller-manager-metrics-monitor"} {
		g.Expect(want).To(HaveKey(key))
		g.Expect(chart).To(HaveKeyWithValue(key, want[key]), "%s differs between the chart and config/prometheus", key)
	}
}

// kustomizeWithPrometheus renders config/default with config/prometheus added, as its
// kustomization's comment describes.
func kustomizeWithPrometheus(t *testing.T) []object {
	t.Helper()
	dir := filepath.Join(repoRoot(), "config", "with-prometheus-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	kustomization := "resources:\n- ../default\n- ../prometheus\nnamespace: mautic-operator-system\nnamePrefix: mautic-operator-\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	return kustomize(t, "with-prometheus-test")
}

// `make build-installer` writes dist/install.yaml from config/default; the chart's defaults render
// the same objects (the Namespace aside).
func TestBuildInstallerMatchesChart(t *testing.T) {
	helmBinary(t)
	if os.Getenv("CONTROLLER_GEN") == "" && os.Getenv("CI") != "true" {
		t.Skip("CONTROLLER_GEN is not set: `make test` runs this test with make build-installer")
	}
	out := filepath.Join(t.TempDir(), "install.yaml")
	cmd := exec.CommandContext(t.Context(), "make", "--no-print-directory", "build-installer", "IMG="+defaultImage, "INSTALLER="+out)
	cmd.Dir = repoRoot()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build-installer: %v\n%s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	installer := parseObjects(t, data)
	NewWithT(t).Expect(kinds(installer)).To(HaveKeyWithValue("Namespace", 1))
	chart := normalize(helmTemplate(t, "mautic-operator-system", "--set", "image.tag=dev"))
	expectSameObjects(t, chart, normalize(installer), "make build-installer")
}
