// Package chart tests charts/mautic-operator with the helm binary `make test` builds (its path in
// $HELM): lint, rendering over several value sets, and the rendered objects against
// `kubectl kustomize` of config/ and against `make build-installer`, so that the chart and the
// kustomize install cannot drift apart.
package chart

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// repoRoot is the repository's top directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// chartDir is the chart under test.
func chartDir() string { return filepath.Join(repoRoot(), "charts", "mautic-operator") }

// helmBinary is $HELM; without it the test fails under CI=true and is skipped otherwise.
func helmBinary(t *testing.T) string {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("HELM is not set: run the chart tests through `make test`, which builds helm and sets HELM")
		}
		t.Skip("HELM is not set: `make test` builds helm and runs these tests")
	}
	return helm
}

// object is one rendered Kubernetes object.
type object = map[string]any

// helmTemplate renders the chart as release mautic-operator in namespace with the extra args
// (e.g. --set x=y, --api-versions monitoring.coreos.com/v1).
func helmTemplate(t *testing.T, namespace string, args ...string) []object {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", "mautic-operator", chartDir(), "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return parseObjects(t, out)
}

// runHelm runs helm and returns its combined output.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), helmBinary(t), args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// parseObjects splits a YAML stream into its objects, dropping empty documents.
func parseObjects(t *testing.T, data []byte) []object {
	t.Helper()
	var objects []object
	for _, doc := range strings.Split("\n"+string(data), "\n---") {
		var obj object
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("parsing a YAML document: %v\n%s", err, doc)
		}
		if len(obj) > 0 {
			objects = append(objects, obj)
		}
	}
	return objects
}

// find returns the object of kind and name, or nil.
func find(objects []object, kind, name string) object {
	for _, obj := range objects {
		if obj["kind"] == kind && get(obj, "metadata", "name") == name {
			return obj
		}
	}
	return nil
}

// kinds counts the objects of each kind.
func kinds(objects []object) map[string]int {
	out := map[string]int{}
	for _, obj := range objects {
		out[obj["kind"].(string)]++
	}
	return out
}

// get follows a path of map keys and list indexes (ints) into obj; nil when absent.
func get(obj any, path ...any) any {
	for _, p := range path {
		switch key := p.(type) {
		case string:
			m, ok := obj.(map[string]any)
			if !ok {
				return nil
			}
			obj = m[key]
		case int:
			l, ok := obj.([]any)
			if !ok || key >= len(l) {
				return nil
			}
			obj = l[key]
		}
	}
	return obj
}

// managerArgs are the manager container's arguments of the rendered Deployment.
func managerArgs(t *testing.T, objects []object) []string {
	t.Helper()
	deployment := find(objects, "Deployment", "mautic-operator-controller-manager")
	if deployment == nil {
		t.Fatal("no Deployment mautic-operator-controller-manager")
	}
	rawArgs := get(deployment, "spec", "template", "spec", "containers", 0, "args").([]any)
	args := make([]string, 0, len(rawArgs))
	for _, a := range rawArgs {
		args = append(args, a.(string))
	}
	return args
}
