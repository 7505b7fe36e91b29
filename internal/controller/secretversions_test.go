package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func secretMeta(namespace, name, uid, resourceVersion string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Namespace: namespace, Name: name, UID: types.UID(uid), ResourceVersion: resourceVersion,
	}}
}

// recordingStore returns a versionStore that records the Secrets it reports as changed.
func recordingStore() (*versionStore, *[]types.NamespacedName) {
	store := newVersionStore()
	var changed []types.NamespacedName
	store.setChanged(func(key types.NamespacedName) { changed = append(changed, key) })
	return store, &changed
}

func TestVersionStoreBeforeAndAfterTheFirstList(t *testing.T) {
	g := NewWithT(t)
	store, changed := recordingStore()
	key := types.NamespacedName{Namespace: "sales", Name: "mautic-credentials"}

	_, err := store.version(key)
	g.Expect(err).To(MatchError(errSecretsNotListed), "before the first list the store cannot tell")

	g.Expect(store.Replace([]any{secretMeta("sales", "mautic-credentials", "u1", "10")}, "10")).To(Succeed())
	g.Expect(*changed).To(BeEmpty(), "the first list reports nothing: every connection is reconciled at start anyway")
	g.Expect(store.version(key)).To(Equal("u1:10"))
	select {
	case <-store.listed:
	default:
		t.Fatal("the first list did not mark the store listed")
	}

	_, err = store.version(types.NamespacedName{Namespace: "sales", Name: "missing"})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a listed store knows a Secret is absent: %v", err)
}

func TestVersionStoreReportsOnlyChanges(t *testing.T) {
	a := types.NamespacedName{Namespace: "sales", Name: "a"}
	b := types.NamespacedName{Namespace: "sales", Name: "b"}
	c := types.NamespacedName{Namespace: "ops", Name: "c"}
	for _, tc := range []struct {
		name    string
		event   func(*versionStore) error
		changed []types.NamespacedName
		version map[types.NamespacedName]string // "" for absent
	}{{
		name:    "a new Secret",
		event:   func(s *versionStore) error { return s.Add(secretMeta("ops", "c", "u3", "30")) },
		changed: []types.NamespacedName{c},
		version: map[types.NamespacedName]string{c: "u3:30"},
	}, {
		name:    "a new resourceVersion",
		event:   func(s *versionStore) error { return s.Update(secretMeta("sales", "a", "u1", "11")) },
		changed: []types.NamespacedName{a},
		version: map[types.NamespacedName]string{a: "u1:11"},
	}, {
		name:    "the same version again (a relisted or repeated event)",
		event:   func(s *versionStore) error { return s.Update(secretMeta("sales", "a", "u1", "10")) },
		version: map[types.NamespacedName]string{a: "u1:10"},
	}, {
		name:    "recreated under the same name",
		event:   func(s *versionStore) error { return s.Add(secretMeta("sales", "a", "u9", "10")) },
		changed: []types.NamespacedName{a},
		version: map[types.NamespacedName]string{a: "u9:10"},
	}, {
		name:    "deleted",
		event:   func(s *versionStore) error { return s.Delete(secretMeta("sales", "b", "u2", "20")) },
		changed: []types.NamespacedName{b},
		version: map[types.NamespacedName]string{b: ""},
	}, {
		name:    "deleting a Secret never seen",
		event:   func(s *versionStore) error { return s.Delete(secretMeta("ops", "c", "u3", "30")) },
		version: map[types.NamespacedName]string{c: ""},
	}, {
		name: "a relist after a lost watch: one changed, one gone, one new, one as it was",
		event: func(s *versionStore) error {
			return s.Replace([]any{secretMeta("sales", "a", "u1", "12"), secretMeta("ops", "c", "u3", "30")}, "40")
		},
		changed: []types.NamespacedName{a, b, c},
		version: map[types.NamespacedName]string{a: "u1:12", b: "", c: "u3:30"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			store, changed := recordingStore()
			g.Expect(store.Replace([]any{secretMeta("sales", "a", "u1", "10"), secretMeta("sales", "b", "u2", "20")}, "20")).To(Succeed())
			g.Expect(tc.event(store)).To(Succeed())
			g.Expect(*changed).To(ConsistOf(tc.changed))
			for key, want := range tc.version {
				got, err := store.version(key)
				if want == "" {
					g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s: %v", key, err)
					continue
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(Equal(want), key.String())
			}
		})
	}
}

func TestSecretVersionsByNamespace(t *testing.T) {
	g := NewWithT(t)
	watch := newSecretVersions(nil, []string{"sales", "ops"}, nil)
	g.Expect(watch.stores["sales"].Replace([]any{secretMeta("sales", "a", "u1", "10")}, "10")).To(Succeed())

	g.Expect(watch.version("sales", "a")).To(Equal("u1:10"))
	_, err := watch.version("ops", "a")
	g.Expect(err).To(MatchError(errSecretsNotListed), "a namespace not listed yet")
	_, err = watch.version("billing", "a")
	g.Expect(err).To(MatchError(errSecretsNotListed), "a namespace the manager does not watch")

	all := newSecretVersions(nil, nil, nil)
	g.Expect(all.stores[metav1.NamespaceAll].Replace([]any{secretMeta("billing", "a", "u5", "50")}, "50")).To(Succeed())
	g.Expect(all.version("billing", "a")).To(Equal("u5:50"))
	_, err = all.version("sales", "a")
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
}
