package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"
)

// helloOptions build testdata/hello for two platforms.
func helloOptions(t *testing.T) Options {
	t.Helper()
	platforms, err := ParsePlatforms("linux/amd64,linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Package: "./testdata/hello", Dir: ".", Name: "example.com/hello:test", Platforms: platforms,
		LDFlags: "-X main.greeting=stamped", BinaryPath: "/hello", Epoch: time.Unix(1700000000, 0).UTC(),
		Labels: map[string]string{"org.opencontainers.image.version": "test"},
	}
}

func TestBuildIsReproducible(t *testing.T) {
	g := NewWithT(t)
	opts := helloOptions(t)
	first, err := Build(context.Background(), opts)
	g.Expect(err).NotTo(HaveOccurred())
	second, err := Build(context.Background(), opts)
	g.Expect(err).NotTo(HaveOccurred())
	d1, err := first.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	d2, err := second.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d2).To(Equal(d1), "two builds of the same sources give the same index digest")

	// The tarballs of the two layouts are byte for byte the same as well.
	dir := t.TempDir()
	for i, idx := range []v1.ImageIndex{first, second} {
		g.Expect(Outputs{LayoutDir: filepath.Join(dir, "layout"), Tarball: filepath.Join(dir, []string{"a.tar", "b.tar"}[i])}.
			Write(idx, opts.Name)).To(Succeed())
	}
	a, err := os.ReadFile(filepath.Join(dir, "a.tar"))
	g.Expect(err).NotTo(HaveOccurred())
	b, err := os.ReadFile(filepath.Join(dir, "b.tar"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b).To(Equal(a))

	// Another epoch is another image.
	opts.Epoch = opts.Epoch.Add(time.Second)
	third, err := Build(context.Background(), opts)
	g.Expect(err).NotTo(HaveOccurred())
	d3, err := third.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d3).NotTo(Equal(d1))
}

func TestImageConfigAndLayer(t *testing.T) {
	g := NewWithT(t)
	opts := helloOptions(t)
	built, err := Build(context.Background(), opts)
	g.Expect(err).NotTo(HaveOccurred())

	// Read the image back from the layout the way an importer does.
	dir := filepath.Join(t.TempDir(), "layout")
	g.Expect(WriteLayout(dir, built, opts.Name)).To(Succeed())
	top, err := layout.ImageIndexFromPath(dir)
	g.Expect(err).NotTo(HaveOccurred())
	topManifest, err := top.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(topManifest.Manifests).To(HaveLen(1))
	g.Expect(topManifest.Manifests[0].Annotations).To(HaveKeyWithValue(containerdNameAnnotation, opts.Name))
	g.Expect(topManifest.Manifests[0].MediaType).To(Equal(types.OCIImageIndex))
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	g.Expect(err).NotTo(HaveOccurred())
	manifest, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())

	var platforms []string
	for _, desc := range manifest.Manifests {
		g.Expect(desc.Platform).NotTo(BeNil())
		platforms = append(platforms, platformString(*desc.Platform))
		img, err := idx.Image(desc.Digest)
		g.Expect(err).NotTo(HaveOccurred())
		cfg, err := img.ConfigFile()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cfg.OS + "/" + cfg.Architecture).To(Equal(platformString(*desc.Platform)))
		g.Expect(cfg.Config.User).To(Equal("65532:65532"))
		g.Expect(cfg.Config.Entrypoint).To(Equal([]string{"/hello"}))
		g.Expect(cfg.Config.Cmd).To(BeEmpty())
		g.Expect(cfg.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.version", "test"))
		g.Expect(cfg.Created.Time.Equal(opts.Epoch)).To(BeTrue())

		layers, err := img.Layers()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(layers).To(HaveLen(1), "one layer")
		rc, err := layers[0].Uncompressed()
		g.Expect(err).NotTo(HaveOccurred())
		entries := tarEntries(t, rc)
		g.Expect(entries).To(HaveLen(1), "the layer holds the binary and nothing else: no shell, no /etc")
		hdr := entries[0]
		g.Expect(hdr.Name).To(Equal("hello"))
		g.Expect(hdr.Typeflag).To(Equal(byte(tar.TypeReg)))
		g.Expect(hdr.Mode).To(Equal(int64(0o555)))
		g.Expect(hdr.Uid).To(Equal(0))
		g.Expect(hdr.ModTime.Equal(opts.Epoch)).To(BeTrue())
	}
	g.Expect(platforms).To(Equal([]string{"linux/amd64", "linux/arm64"}))
}

func TestNestedBinaryPathHasParentDirectories(t *testing.T) {
	g := NewWithT(t)
	bin := filepath.Join(t.TempDir(), "bin")
	g.Expect(os.WriteFile(bin, []byte("binary"), 0o755)).To(Succeed())
	layer, err := binaryLayer(bin, "/usr/local/bin/tool", time.Unix(0, 0))
	g.Expect(err).NotTo(HaveOccurred())
	rc, err := layer.Uncompressed()
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, h := range tarEntries(t, rc) {
		names = append(names, h.Name)
	}
	g.Expect(names).To(Equal([]string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/tool"}))
}

func TestFlagErrorsNameTheFix(t *testing.T) {
	g := NewWithT(t)
	_, _, err := parseFlags([]string{"--name", "x:y", "--tarball", "x.tar"})
	g.Expect(err).To(MatchError(ContainSubstring("--package and --name are required")))
	_, _, err = parseFlags([]string{"--package", "./cmd/x", "--name", "x:y"})
	g.Expect(err).To(MatchError(ContainSubstring("set --oci-layout DIR and/or --tarball FILE")))
	_, err = ParsePlatforms("linux")
	g.Expect(err).To(MatchError(ContainSubstring("os/arch[/variant]")))
	_, err = ParsePlatforms("linux/amd64,linux/amd64")
	g.Expect(err).To(MatchError(ContainSubstring("listed twice")))
	_, err = resolveEpoch("yesterday", ".")
	g.Expect(err).To(MatchError(ContainSubstring("Unix time in seconds")))
	opts, _, err := parseFlags([]string{"--package", "./cmd/x", "--name", "x:y", "--tarball", "x.tar", "--epoch", "42",
		"--label", "a=b", "--platforms", "linux/arm/v7"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(opts.Epoch.Unix()).To(Equal(int64(42)))
	g.Expect(opts.Labels).To(Equal(map[string]string{"a": "b"}))
	g.Expect(opts.Platforms).To(Equal([]v1.Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}}))
}

// tarEntries reads every header of a tar stream.
func tarEntries(t *testing.T, rc io.ReadCloser) []*tar.Header {
	t.Helper()
	defer func() { _ = rc.Close() }()
	var out []*tar.Header
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}
