package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// tokenMemory remembers the token last published for each connection, so that a deleted or edited
// token Secret is restored from it while it is valid, without a new token request. It holds what
// the informer cache already holds for managed Secrets, nothing more.
type tokenMemory struct {
	mu     sync.Mutex
	tokens map[types.NamespacedName]rememberedToken
}

// rememberedToken ties a token to the UID of the connection it was issued for, so that a connection
// deleted and created again under the same name never inherits its predecessor's token.
type rememberedToken struct {
	uid   types.UID
	token *issuedToken
}

func (m *tokenMemory) get(key types.NamespacedName, uid types.UID) *issuedToken {
	m.mu.Lock()
	defer m.mu.Unlock()
	if remembered, ok := m.tokens[key]; ok && remembered.uid == uid {
		return remembered.token
	}
	return nil
}

func (m *tokenMemory) put(key types.NamespacedName, uid types.UID, t *issuedToken) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tokens == nil {
		m.tokens = map[types.NamespacedName]rememberedToken{}
	}
	m.tokens[key] = rememberedToken{uid: uid, token: t}
}

func (m *tokenMemory) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, key)
}

// statusMemory remembers the status last written for each connection, so that a reconcile that
// computes the same status again writes nothing even while the cache still holds an older one
// (the operator's own writes trigger such reconciles).
type statusMemory struct {
	mu       sync.Mutex
	statuses map[types.NamespacedName]writtenStatus
}

// writtenStatus is a status written for the connection with uid.
type writtenStatus struct {
	uid    types.UID
	status *authv1alpha1.MauticConnectionStatus
}

// written reports whether status is the one last written for the connection.
func (m *statusMemory) written(key types.NamespacedName, uid types.UID, status *authv1alpha1.MauticConnectionStatus) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	last, ok := m.statuses[key]
	return ok && last.uid == uid && equality.Semantic.DeepEqual(last.status, status)
}

func (m *statusMemory) put(key types.NamespacedName, uid types.UID, status *authv1alpha1.MauticConnectionStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.statuses == nil {
		m.statuses = map[types.NamespacedName]writtenStatus{}
	}
	m.statuses[key] = writtenStatus{uid: uid, status: status.DeepCopy()}
}

func (m *statusMemory) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.statuses, key)
}
