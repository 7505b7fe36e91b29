package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

func TestManifestRendersForEveryArchive(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	sums := map[string]string{}
	for _, name := range []string{"kubectl-mautic_linux_amd64.tar.gz", "kubectl-mautic_darwin_arm64.tar.gz",
		"kubectl-mautic_windows_amd64.tar.gz", "checksums.txt"} {
		data := []byte("archive " + name)
		g.Expect(os.WriteFile(filepath.Join(dir, name), data, 0o644)).To(Succeed())
		sum := sha256.Sum256(data)
		sums[name] = hex.EncodeToString(sum[:])
	}
	m, err := Collect("v1.2.3", dir)
	g.Expect(err).NotTo(HaveOccurred())
	var out bytes.Buffer
	g.Expect(Render(&out, "mautic.yaml", m)).To(Succeed())

	var plugin struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Version          string `json:"version"`
			Homepage         string `json:"homepage"`
			ShortDescription string `json:"shortDescription"`
			Description      string `json:"description"`
			Platforms        []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
				Bin    string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	g.Expect(yaml.UnmarshalStrict(out.Bytes(), &plugin)).To(Succeed(), out.String())
	g.Expect(plugin.APIVersion).To(Equal("krew.googlecontainertools.github.com/v1alpha2"))
	g.Expect(plugin.Kind).To(Equal("Plugin"))
	g.Expect(plugin.Metadata.Name).To(Equal("mautic"), "kubectl-mautic is installed as `kubectl krew install mautic`")
	g.Expect(plugin.Spec.Version).To(Equal("v1.2.3"))
	g.Expect(plugin.Spec.ShortDescription).NotTo(BeEmpty())
	g.Expect(plugin.Spec.Description).To(ContainSubstring("authorize"))
	g.Expect(plugin.Spec.Platforms).To(HaveLen(3), "checksums.txt is no archive")
	p := plugin.Spec.Platforms[1]
	g.Expect(p.Selector.MatchLabels).To(Equal(map[string]string{"os": "linux", "arch": "amd64"}))
	g.Expect(p.URI).To(Equal("https://github.com/mautic-operator/mautic-operator/releases/download/v1.2.3/kubectl-mautic_linux_amd64.tar.gz"))
	g.Expect(p.SHA256).To(Equal(sums["kubectl-mautic_linux_amd64.tar.gz"]))
	g.Expect(p.Bin).To(Equal("kubectl-mautic"))
	g.Expect(plugin.Spec.Platforms[2].Bin).To(Equal("kubectl-mautic.exe"))
}

func TestBadInputNamesTheFix(t *testing.T) {
	g := NewWithT(t)
	_, err := Collect("1.2", t.TempDir())
	g.Expect(err).To(MatchError(ContainSubstring("not a release tag like v1.2.3")))
	_, err = Collect("v1.2.3", t.TempDir())
	g.Expect(err).To(MatchError(ContainSubstring("make krew-manifest")))
}
