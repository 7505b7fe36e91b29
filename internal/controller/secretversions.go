package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// secretVersions watches the metadata of the Secrets in the watched namespaces, where connections
// find their credentials and CA, and keeps of each Secret only its name and version
// ("<uid>:<resourceVersion>"): about 150 bytes per Secret, where an informer keeps a metadata object
// with its keys and indexes (about 530 bytes), so that unrelated Secrets cost the manager little.
//
// It is also the controller's source of Secret events: a Secret created, changed or deleted after
// the first list reconciles the connections that read it. The controller starts its workers only
// once every namespace has been listed, so that a reconcile after a restart finds the versions it
// compares with what the published token was obtained from, without reading any Secret.
type secretVersions struct {
	client  metadata.Interface
	readers func(ctx context.Context, key types.NamespacedName) []reconcile.Request
	// stores holds one store per watched namespace, or a single one under "" for all namespaces.
	stores map[string]*versionStore
}

// errSecretsNotListed is the answer of the watch before its first list, or for a namespace it does
// not watch: the caller cannot tell whether the Secret exists.
var errSecretsNotListed = errors.New("the Secrets of this namespace are not listed (yet)")

// newSecretVersions returns the watch of the Secrets in namespaces (all when empty); readers maps a
// Secret to the reconcile requests of the connections that read it.
func newSecretVersions(client metadata.Interface, namespaces []string,
	readers func(ctx context.Context, key types.NamespacedName) []reconcile.Request) *secretVersions {
	w := &secretVersions{client: client, readers: readers, stores: map[string]*versionStore{}}
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		w.stores[ns] = newVersionStore()
	}
	return w
}

// version returns the version of a Secret; a NotFound error when the watch has listed its namespace
// and has no Secret of that name, errSecretsNotListed when it cannot tell.
func (w *secretVersions) version(namespace, name string) (string, error) {
	store, ok := w.stores[metav1.NamespaceAll]
	if !ok {
		store, ok = w.stores[namespace]
	}
	if !ok {
		return "", errSecretsNotListed
	}
	return store.version(types.NamespacedName{Namespace: namespace, Name: name})
}

// Start lists and watches the Secrets of every watched namespace until ctx ends; from then on, each
// Secret that changes reconciles the connections that read it.
func (w *secretVersions) Start(ctx context.Context, queue workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	changed := func(key types.NamespacedName) {
		for _, request := range w.readers(ctx, key) {
			queue.Add(request)
		}
	}
	secrets := w.client.Resource(corev1.SchemeGroupVersion.WithResource("secrets"))
	for ns, store := range w.stores {
		store.setChanged(changed)
		resource := secrets.Namespace(ns)
		lw := &toolscache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
				return resource.List(ctx, options)
			},
			WatchFuncWithContext: func(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
				return resource.Watch(ctx, options)
			},
		}
		reflector := toolscache.NewReflectorWithOptions(lw, &metav1.PartialObjectMetadata{}, store,
			toolscache.ReflectorOptions{Name: "secret versions " + ns, TypeDescription: "Secret metadata"})
		go reflector.RunWithContext(ctx)
	}
	return nil
}

// WaitForSync returns once every watched namespace has been listed, or ctx ends.
func (w *secretVersions) WaitForSync(ctx context.Context) error {
	for ns, store := range w.stores {
		select {
		case <-store.listed:
		case <-ctx.Done():
			if ns == metav1.NamespaceAll {
				ns = "all namespaces"
			}
			return fmt.Errorf("listing the Secrets of %s: %w", ns, ctx.Err())
		}
	}
	return nil
}

// versionStore is what a reflector fills for secretVersions: Secret name to version, for one
// namespace or all. After the first list it reports each Secret whose version changed.
type versionStore struct {
	mu         sync.RWMutex
	versions   map[types.NamespacedName]string
	namespaces map[string]string // one copy of each namespace name the keys share
	changed    func(types.NamespacedName)
	listed     chan struct{} // closed by the first list
	isListed   bool
}

func newVersionStore() *versionStore {
	return &versionStore{versions: map[types.NamespacedName]string{}, namespaces: map[string]string{}, listed: make(chan struct{})}
}

func (s *versionStore) setChanged(changed func(types.NamespacedName)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changed = changed
}

func (s *versionStore) version(key types.NamespacedName) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.isListed {
		return "", errSecretsNotListed
	}
	if v, ok := s.versions[key]; ok {
		return v, nil
	}
	return "", apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
}

// key returns the Secret's key, its name copied so that it holds nothing of the decoded object, and
// its namespace shared with every other key of the namespace.
func (s *versionStore) key(obj metav1.Object) types.NamespacedName {
	ns, ok := s.namespaces[obj.GetNamespace()]
	if !ok {
		ns = strings.Clone(obj.GetNamespace())
		s.namespaces[ns] = ns
	}
	return types.NamespacedName{Namespace: ns, Name: strings.Clone(obj.GetName())}
}

// put records obj's version and reports whether it changed after the first list.
func (s *versionStore) put(obj any) (types.NamespacedName, bool, error) {
	meta, err := apimeta.Accessor(obj)
	if err != nil {
		return types.NamespacedName{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	version := secretVersionOf(meta)
	key := types.NamespacedName{Namespace: meta.GetNamespace(), Name: meta.GetName()}
	old, seen := s.versions[key]
	if seen && old == version {
		return key, false, nil
	}
	if !seen {
		key = s.key(meta)
	}
	s.versions[key] = version
	return key, s.isListed, nil
}

// report tells the controller about the Secrets that changed.
func (s *versionStore) report(keys ...types.NamespacedName) {
	s.mu.RLock()
	changed := s.changed
	s.mu.RUnlock()
	if changed == nil {
		return
	}
	for _, key := range keys {
		changed(key)
	}
}

func (s *versionStore) Add(obj any) error {
	key, changed, err := s.put(obj)
	if changed {
		s.report(key)
	}
	return err
}

func (s *versionStore) Update(obj any) error { return s.Add(obj) }

// Delete forgets a Secret the watch saw deleted. (Reflectors hand their store the object itself;
// only a DeltaFIFO makes tombstones, and none stands between the reflector and this store.)
func (s *versionStore) Delete(obj any) error {
	meta, err := apimeta.Accessor(obj)
	if err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: meta.GetNamespace(), Name: meta.GetName()}
	s.mu.Lock()
	_, seen := s.versions[key]
	delete(s.versions, key)
	listed := s.isListed
	s.mu.Unlock()
	if seen && listed {
		s.report(key)
	}
	return nil
}

// Replace takes a whole list: the first one makes the store listed; a later one (after the watch was
// lost) reports every Secret that appeared, changed or disappeared meanwhile.
func (s *versionStore) Replace(list []any, _ string) error {
	versions := make(map[types.NamespacedName]string, len(list))
	s.mu.Lock()
	for _, obj := range list {
		meta, err := apimeta.Accessor(obj)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		versions[s.key(meta)] = secretVersionOf(meta)
	}
	var changed []types.NamespacedName
	if s.isListed {
		for key, version := range versions {
			if s.versions[key] != version {
				changed = append(changed, key)
			}
		}
		for key := range s.versions {
			if _, ok := versions[key]; !ok {
				changed = append(changed, key)
			}
		}
	}
	s.versions = versions
	if !s.isListed {
		s.isListed = true
		close(s.listed)
	}
	s.mu.Unlock()
	s.report(changed...)
	return nil
}

// Resync has nothing to do: the store is not a queue.
func (s *versionStore) Resync() error { return nil }
