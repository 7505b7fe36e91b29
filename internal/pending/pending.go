// Package pending keeps rotated refresh tokens that could not be written to their state Secret
// yet. Mautic deletes a refresh token in the request that issues its successor, so such a token is
// the only valid one left: it is kept in memory and, when the store has a directory, in one file
// per connection that outlives the manager's process (an emptyDir in the Deployment survives a
// container restart, an OOM kill or a lost leader election). The operator writes it to the state
// Secret before any other refresh of that connection.
package pending

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Token is a rotated refresh token waiting to be persisted.
type Token struct {
	// Namespace and Name name the MauticConnection.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID is the MauticConnection's UID; a connection recreated under the same name is another one.
	UID string `json:"uid"`
	// SpentDigest is the digest of the refresh token spent to obtain this one: the token is written
	// only while the state Secret still holds that one, so that a newer authorization wins.
	SpentDigest string `json:"spentDigest"`
	// RefreshToken is the rotated refresh token.
	RefreshToken string `json:"refreshToken"`
	// IssuedAt is when Mautic issued it.
	IssuedAt time.Time `json:"issuedAt"`
}

// fileSuffix ends the name of every file the store writes.
const fileSuffix = ".pending.json"

// Store holds pending tokens by connection UID. Safe for concurrent use.
type Store struct {
	dir string

	mu     sync.Mutex
	tokens map[string]Token
}

// Open returns a store backed by dir, loading the tokens a previous process left there. An empty
// dir keeps tokens in memory only. The directory is created (mode 0700) when missing.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, tokens: map[string]Token{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the pending refresh token directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the pending refresh token directory: %w", err)
	}
	var problems []error
	for _, entry := range entries {
		if entry.IsDir() || !strings.HasSuffix(entry.Name(), fileSuffix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, entry.Name())) //nolint:gosec // a file of the store's own directory
		if err != nil {
			problems = append(problems, err)
			continue
		}
		var t Token
		if err := json.Unmarshal(data, &t); err != nil || t.UID == "" || t.RefreshToken == "" {
			problems = append(problems, fmt.Errorf("%s: not a pending refresh token", entry.Name()))
			continue
		}
		s.tokens[t.UID] = t
	}
	return s, errors.Join(problems...)
}

// Dir returns the directory backing the store; "" when it is memory only.
func (s *Store) Dir() string { return s.dir }

// Put keeps t, replacing any pending token of the same connection. The token is in memory
// whatever happens; an error means it could not be made durable.
func (s *Store) Put(t Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[t.UID] = t
	if s.dir == "" {
		return nil
	}
	data, err := json.Marshal(t) //nolint:gosec // keeping the refresh token on disk is the store's purpose
	if err != nil {
		return err
	}
	return writeFileSync(s.path(t.UID), data)
}

// Get returns the pending token of the connection with uid.
func (s *Store) Get(uid string) (Token, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[uid]
	return t, ok
}

// Remove forgets the pending token of the connection with uid, if it is still t (a newer one put
// meanwhile stays).
func (s *Store) Remove(t Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	current, ok := s.tokens[t.UID]
	if !ok || current.RefreshToken != t.RefreshToken {
		return nil
	}
	delete(s.tokens, t.UID)
	if s.dir == "" {
		return nil
	}
	// The file may hold a newer token, written by another process sharing the directory: keep it.
	if data, err := os.ReadFile(s.path(t.UID)); err == nil {
		var onDisk Token
		if json.Unmarshal(data, &onDisk) == nil && onDisk.RefreshToken != t.RefreshToken {
			return nil
		}
	}
	if err := os.Remove(s.path(t.UID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(s.dir)
}

// List returns every pending token, ordered by namespace and name.
func (s *Store) List() []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]Token, 0, len(s.tokens))
	for _, t := range s.tokens {
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Namespace != list[j].Namespace {
			return list[i].Namespace < list[j].Namespace
		}
		return list[i].Name < list[j].Name
	})
	return list
}

// path is the file of the connection with uid. UIDs are UUIDs; anything else is made safe.
func (s *Store) path(uid string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, uid)
	return filepath.Join(s.dir, safe+fileSuffix)
}

// writeFileSync writes data to path durably: a temporary file, synced, renamed over path, and the
// directory synced, so that a crash leaves either the old file or the new one.
func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // G304: the store's own directory, from a manager flag
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
