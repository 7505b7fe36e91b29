package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
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
