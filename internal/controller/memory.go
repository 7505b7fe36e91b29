package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// keyed is a map of one value per connection (or per Secret), safe for concurrent use; the zero
// value is empty. The reconciler's memories are built on it.
type keyed[V any] struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]V
}

func (k *keyed[V]) load(key types.NamespacedName) (V, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.entries[key]
	return v, ok
}

func (k *keyed[V]) store(key types.NamespacedName, v V) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.entries == nil {
		k.entries = map[types.NamespacedName]V{}
	}
	k.entries[key] = v
}

func (k *keyed[V]) forget(key types.NamespacedName) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.entries, key)
}

// tokenMemory remembers the token last published for each connection, so that a deleted or edited
// token Secret is restored from it while it is valid, without a new token request. It holds what
// the informer cache already holds for managed Secrets, nothing more.
type tokenMemory struct{ keyed[rememberedToken] }

// rememberedToken ties a token to the UID of the connection it was issued for, so that a connection
// deleted and created again under the same name never inherits its predecessor's token.
type rememberedToken struct {
	uid   types.UID
	token *issuedToken
}

func (m *tokenMemory) get(key types.NamespacedName, uid types.UID) *issuedToken {
	if remembered, ok := m.load(key); ok && remembered.uid == uid {
		return remembered.token
	}
	return nil
}

func (m *tokenMemory) put(key types.NamespacedName, uid types.UID, t *issuedToken) {
	m.store(key, rememberedToken{uid: uid, token: t})
}

// statusMemory remembers the status last written for each connection, so that a reconcile that
// computes the same status again writes nothing even while the cache still holds an older one
// (the operator's own writes trigger such reconciles).
type statusMemory struct{ keyed[writtenStatus] }

// writtenStatus is a status written for the connection with uid, over the object at resourceVersion from.
type writtenStatus struct {
	uid    types.UID
	from   string
	status *authv1alpha1.MauticConnectionStatus
}

// written reports whether status is the one last written for the connection.
func (m *statusMemory) written(key types.NamespacedName, uid types.UID, status *authv1alpha1.MauticConnectionStatus) bool {
	last, ok := m.load(key)
	return ok && last.uid == uid && equality.Semantic.DeepEqual(last.status, status)
}

// put remembers status as written for the connection whose object was at resourceVersion from.
func (m *statusMemory) put(key types.NamespacedName, uid types.UID, from string, status *authv1alpha1.MauticConnectionStatus) {
	m.store(key, writtenStatus{uid: uid, from: from, status: status.DeepCopy()})
}

// catchUp gives conn the status last written for it when conn is still the object that write was
// made over (the cache has not seen the write yet), so that the status computed from it keeps the
// condition times already written instead of stamping new ones and writing again.
func (m *statusMemory) catchUp(conn *authv1alpha1.MauticConnection) {
	last, ok := m.load(types.NamespacedName{Namespace: conn.Namespace, Name: conn.Name})
	if ok && last.uid == conn.UID && last.from == conn.ResourceVersion {
		conn.Status = *last.status.DeepCopy()
	}
}
