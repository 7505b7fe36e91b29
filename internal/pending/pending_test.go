package pending_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/pending"
)

func token(uid, refreshToken string) pending.Token {
	return pending.Token{Namespace: "shop", Name: "crm-" + uid, UID: uid, SpentDigest: "d", RefreshToken: refreshToken,
		IssuedAt: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)}
}

func TestStoreSurvivesANewProcess(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	dir := filepath.Join(t.TempDir(), "pending")
	first, err := pending.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(first.Put(token("a", "rt-a"))).To(Succeed())
	g.Expect(first.Put(token("b", "rt-b"))).To(Succeed())

	info, err := os.Stat(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o700)))
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	g.Expect(files).To(HaveLen(2), "one file per connection, no temporary file left")
	for _, f := range files {
		info, err := os.Stat(f)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)))
	}

	second, err := pending.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(second.List()).To(Equal([]pending.Token{token("a", "rt-a"), token("b", "rt-b")}))

	g.Expect(second.Remove(token("a", "rt-a"))).To(Succeed())
	third, err := pending.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(third.List()).To(Equal([]pending.Token{token("b", "rt-b")}))
}

func TestStoreRemoveKeepsANewerToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s, err := pending.Open(t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Put(token("a", "first"))).To(Succeed())
	g.Expect(s.Put(token("a", "second"))).To(Succeed())
	g.Expect(s.Remove(token("a", "first"))).To(Succeed())
	got, ok := s.Get("a")
	g.Expect(ok).To(BeTrue())
	g.Expect(got.RefreshToken).To(Equal("second"))
}

func TestStoreInMemoryOnly(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s, err := pending.Open("")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Put(token("a", "rt"))).To(Succeed())
	_, ok := s.Get("a")
	g.Expect(ok).To(BeTrue())
	g.Expect(s.Remove(token("a", "rt"))).To(Succeed())
	g.Expect(s.List()).To(BeEmpty())
}

func TestStoreReportsUnreadableFilesAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	dir := t.TempDir()
	s, err := pending.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Put(token("a", "rt-a"))).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "broken.pending.json"), []byte("{"), 0o600)).To(Succeed())
	reopened, err := pending.Open(dir)
	g.Expect(err).To(MatchError(ContainSubstring("broken.pending.json")))
	g.Expect(reopened.List()).To(HaveLen(1))
}

// A process that shares the directory and wrote a newer token keeps it when another removes its own.
func TestStoreRemoveKeepsAFileAnotherProcessRewrote(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	dir := t.TempDir()
	first, _ := pending.Open(dir)
	g.Expect(first.Put(token("a", "old"))).To(Succeed())
	second, _ := pending.Open(dir)
	g.Expect(second.Put(token("a", "newer"))).To(Succeed())
	g.Expect(first.Remove(token("a", "old"))).To(Succeed())
	reopened, err := pending.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reopened.List()).To(Equal([]pending.Token{token("a", "newer")}))
}
