package chart

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

// readText reads a file of the chart.
func readText(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// readMap reads a YAML or JSON file of the chart as a map.
func readMap(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(readText(t, name)), &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// leafKeys are the dotted paths of the values that are not maps, or are empty maps, in order.
// resources, podSecurityContext and securityContext count as leaves: their content is Kubernetes'.
func leafKeys(prefix string, m map[string]any) []string {
	var keys []string
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		child, ok := v.(map[string]any)
		if ok && len(child) > 0 && !kubernetesValue[key] {
			keys = append(keys, leafKeys(key, child)...)
			continue
		}
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// kubernetesValue are the values passed through to Kubernetes objects as a whole.
var kubernetesValue = map[string]bool{"resources": true, "podSecurityContext": true, "securityContext": true}

// schemaHas reports whether the JSON schema declares the property path.
func schemaHas(schema map[string]any, path []string) bool {
	for _, p := range path {
		props, ok := schema["properties"].(map[string]any)
		if !ok {
			return false
		}
		if schema, ok = props[p].(map[string]any); !ok {
			return false
		}
	}
	return true
}

// The chart's copies of generated files are the generated files: `make manifests` copies them and
// `make verify` fails when a copy is stale; this test says so without make.
func TestGeneratedCopiesAreCurrent(t *testing.T) {
	g := NewWithT(t)
	root := repoRoot()
	for copyName, source := range map[string]string{
		"files/crds/auth.mautic-operator.dev_mauticconnections.yaml": "config/crd/bases/auth.mautic-operator.dev_mauticconnections.yaml",
		"files/manager-role.yaml":                                    "config/rbac/role.yaml",
		"files/alerts.yaml":                                          "config/prometheus/alerts.yaml",
	} {
		want, err := os.ReadFile(filepath.Join(root, source))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(readText(t, copyName)).To(Equal(string(want)), "%s is stale: run `make manifests`", copyName)
	}
}
