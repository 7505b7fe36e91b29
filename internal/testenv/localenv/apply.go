package localenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

const (
	// CASecretName is the Secret ApplySamples adds with the test server's CA certificate in its
	// ca.crt key, for spec.tls.caSecretRef.
	CASecretName = "mautic-ca"
	// fieldOwner is the server-side apply field manager of everything applied here.
	fieldOwner = "localenv"
)

// Rewrite is one change ApplySamples made to a sample before applying it.
type Rewrite struct {
	// Kind and Name identify the sample object.
	Kind, Name string
	// Change describes what changed, never showing a secret value.
	Change string
}

// String renders the rewrite as "<Kind> <Name>: <Change>".
func (r Rewrite) String() string { return r.Kind + " " + r.Name + ": " + r.Change }

// ObjectRef names an object that was applied.
type ObjectRef struct {
	Kind, Namespace, Name string
}

// String renders the reference as "<Kind> <namespace>/<name>", or "<Kind> <name>" without namespace.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// AppliedSamples is what ApplySamples did.
type AppliedSamples struct {
	// Rewrites are the changes made to the samples, in order.
	Rewrites []Rewrite
	// Applied are the objects applied, in order, starting with the added CA Secret.
	Applied []ObjectRef
	// Connection is the sample MauticConnection.
	Connection client.ObjectKey
	// CASecret is the Secret added with the test server's certificate.
	CASecret client.ObjectKey
}

// ApplySamples applies every object of the YAML files in dir (config/samples/, kustomization.yaml
// excepted) to namespace, creating the namespace when missing, after pointing the one
// MauticConnection at the test server, trusting its CA (a Secret it adds, CASecretName) and filling
// the credentials Secret that the connection names with the test server's API client.
func (e *Env) ApplySamples(ctx context.Context, dir, namespace string) (*AppliedSamples, error) {
	objects, err := readSamples(dir)
	if err != nil {
		return nil, err
	}
	result, err := e.rewriteSamples(dir, objects)
	if err != nil {
		return nil, err
	}
	if err := e.ensureNamespace(ctx, namespace); err != nil {
		return nil, err
	}
	caSecret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret", //nolint:goconst // a Kind, written out like the other Kinds in this file
		"metadata":   map[string]any{"name": CASecretName, "namespace": namespace},
		"data":       map[string]any{authv1alpha1.CACertKey: base64.StdEncoding.EncodeToString(e.Mautic.CACertPEM())},
	}}
	result.CASecret = client.ObjectKey{Namespace: namespace, Name: CASecretName}
	result.Connection.Namespace = namespace
	result.Applied, err = e.Apply(ctx, namespace, append([]*unstructured.Unstructured{caSecret}, objects...)...)
	return result, err
}

// readSamples decodes every object of every YAML file in dir except kustomization.yaml.
func readSamples(dir string) ([]*unstructured.Unstructured, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objects []*unstructured.Unstructured
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		docs, err := ReadYAML(path)
		if err != nil {
			return nil, err
		}
		objects = append(objects, docs...)
	}
	if len(objects) == 0 {
		return nil, fmt.Errorf("no objects found in %s", dir)
	}
	return objects, nil
}

// rewriteSamples points the one MauticConnection at the test server and its CA, and fills the
// credentials Secret it names with the test server's client.
func (e *Env) rewriteSamples(dir string, objects []*unstructured.Unstructured) (*AppliedSamples, error) {
	var conn *unstructured.Unstructured
	for _, obj := range objects {
		if obj.GetKind() == authv1alpha1.Kind {
			if conn != nil {
				return nil, fmt.Errorf("%s holds more than one MauticConnection; one is expected", dir)
			}
			conn = obj
		}
	}
	if conn == nil {
		return nil, fmt.Errorf("%s holds no MauticConnection", dir)
	}
	result := &AppliedSamples{Connection: client.ObjectKey{Name: conn.GetName()}}
	rewrite := func(obj *unstructured.Unstructured, change string) {
		result.Rewrites = append(result.Rewrites, Rewrite{Kind: obj.GetKind(), Name: obj.GetName(), Change: change})
	}

	oldURL, _, _ := unstructured.NestedString(conn.Object, "spec", "url")
	if err := unstructured.SetNestedField(conn.Object, e.Mautic.URL(), "spec", "url"); err != nil {
		return nil, err
	}
	rewrite(conn, fmt.Sprintf("spec.url %s -> %s", oldURL, e.Mautic.URL()))
	if err := unstructured.SetNestedField(conn.Object, CASecretName, "spec", "tls", "caSecretRef", "name"); err != nil {
		return nil, err
	}
	rewrite(conn, fmt.Sprintf("added spec.tls.caSecretRef.name: %s (the test server's self-signed CA)", CASecretName))

	credentialsName, _, _ := unstructured.NestedString(conn.Object, "spec", "credentialsSecretRef", "name")
	for _, obj := range objects {
		if obj.GetKind() != "Secret" || obj.GetName() != credentialsName {
			continue
		}
		unstructured.RemoveNestedField(obj.Object, "data", authv1alpha1.ClientIDKey)
		unstructured.RemoveNestedField(obj.Object, "data", authv1alpha1.ClientSecretKey)
		if err := unstructured.SetNestedField(obj.Object, e.MauticClient.ID, "stringData", authv1alpha1.ClientIDKey); err != nil {
			return nil, err
		}
		if err := unstructured.SetNestedField(obj.Object, e.MauticClient.Secret, "stringData", authv1alpha1.ClientSecretKey); err != nil {
			return nil, err
		}
		rewrite(obj, fmt.Sprintf("%s and %s replaced by the test server's client %q (values not shown)",
			authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey, e.MauticClient.Name))
		return result, nil
	}
	return nil, fmt.Errorf("%s holds no Secret %q, the MauticConnection's credentialsSecretRef", dir, credentialsName)
}

// ensureNamespace creates namespace unless it exists.
func (e *Env) ensureNamespace(ctx context.Context, namespace string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	return nil
}

// ApplyYAML applies every object of the YAML file at path, as `kubectl apply --server-side -n
// namespace -f path` does, and returns what it applied.
func (e *Env) ApplyYAML(ctx context.Context, path, namespace string) ([]ObjectRef, error) {
	objects, err := ReadYAML(path)
	if err != nil {
		return nil, err
	}
	return e.Apply(ctx, namespace, objects...)
}

// Apply applies objects with server-side apply: Namespaces first, then Secrets, ConfigMaps and
// ServiceAccounts (so that a MauticConnection finds its Secrets on its first reconcile), then the
// rest, each group in the given order. Namespaced objects without a namespace go to namespace.
// It returns what it applied, also on error.
func (e *Env) Apply(ctx context.Context, namespace string, objects ...*unstructured.Unstructured) ([]ObjectRef, error) {
	ordered := slices.Clone(objects)
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int { return applyOrder(a) - applyOrder(b) })
	var applied []ObjectRef
	for _, obj := range ordered {
		obj = obj.DeepCopy()
		namespaced, err := e.Client.IsObjectNamespaced(obj)
		if err != nil {
			return applied, fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		switch {
		case !namespaced:
			obj.SetNamespace("")
		case obj.GetNamespace() == "":
			obj.SetNamespace(namespace)
		}
		if err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			return applied, fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		applied = append(applied, ObjectRef{Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName()})
	}
	return applied, nil
}

// applyOrder ranks Namespaces first and the objects that others refer to next.
func applyOrder(obj *unstructured.Unstructured) int {
	switch obj.GetKind() {
	case "Namespace", "CustomResourceDefinition":
		return 0
	case "Secret", "ConfigMap", "ServiceAccount":
		return 1
	default:
		return 2
	}
}

// ReadYAML decodes the objects of a YAML file of "---"-separated documents, skipping empty ones.
func ReadYAML(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the path of a sample or manifest, from the test harness or the demo
	if err != nil {
		return nil, err
	}
	objects, err := DecodeYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objects, nil
}

// DecodeYAML decodes the objects of a stream of "---"-separated YAML documents, such as the output
// of `kubectl kustomize`, skipping empty ones.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objects []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		objects = append(objects, obj)
	}
}
