package version_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mautic-operator/mautic-operator/internal/version"
)

// TestBinariesPrintTheStampedVersion builds both binaries with the -X flags `make build` and
// `make image` pass, and runs their version commands.
func TestBinariesPrintTheStampedVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the manager and the plugin; run without -short")
	}
	const pkg = "github.com/mautic-operator/mautic-operator/internal/version"
	ldflags := "-X " + pkg + ".Version=v9.8.7-test -X " + pkg + ".Commit=0123456789abcdef"
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	for _, c := range []struct {
		pkg  string
		args []string
		want string
	}{
		{"./cmd/manager", []string{"--version"}, "manager v9.8.7-test (commit 0123456789abcdef)\n"},
		{"./cmd/kubectl-mautic", []string{"version"}, "kubectl-mautic v9.8.7-test (commit 0123456789abcdef)\n"},
	} {
		t.Run(c.pkg, func(t *testing.T) {
			g := NewWithT(t)
			bin := filepath.Join(dir, filepath.Base(c.pkg))
			build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, c.pkg)
			build.Dir = root
			out, err := build.CombinedOutput()
			g.Expect(err).NotTo(HaveOccurred(), string(out))
			out, err = exec.CommandContext(t.Context(), bin, c.args...).Output()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(out)).To(Equal(c.want))
		})
	}
}

func TestDefaultsWithoutLinkerFlags(t *testing.T) {
	g := NewWithT(t)
	g.Expect(version.String()).To(Equal("dev (commit unknown)"))
	g.Expect(strings.Contains(version.String(), version.Version)).To(BeTrue())
}
