package e2e

import (
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

// TestSIGTERMBeforeTheCachesSyncStopsTheManager: a manager whose caches can never sync (its user
// may not list anything) still exits promptly on SIGTERM. controller-runtime v0.25.2 spins and
// never returns from Start in that case; the manager must not hang a rollout on it.
func TestSIGTERMBeforeTheCachesSyncStopsTheManager(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	manager, err := s.env.StartManager(localenv.ManagerOptions{
		Binary:      s.managerBinary,
		Args:        []string{"--health-probe-bind-address=0", "--metrics-bind-address=0"},
		Impersonate: "system:serviceaccount:nobody:no-rights",
		LogPath:     filepath.Join(s.workDir, "manager-without-rights.log"),
		// Longer than the manager's own 5s limit for a manager that never reconciled, far shorter
		// than its graceful shutdown timeout.
		StopTimeout: 20 * time.Second,
	})
	g.Expect(err).NotTo(HaveOccurred())
	// Let it try to list for a while: its caches cannot sync.
	g.Consistently(manager.Done()).WithTimeout(3 * time.Second).ShouldNot(BeClosed())

	g.Expect(manager.Stop()).To(Succeed(), "the manager exits on SIGTERM before its StopTimeout; log:\n%s", manager.LogTail(logTailLines))
	g.Expect(manager.ExitStatus()).NotTo(Equal("running"))
}
