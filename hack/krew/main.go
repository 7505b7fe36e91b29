// Command krew renders the krew plugin manifest of `kubectl mautic` (hack/krew/mautic.yaml) for a
// release: the version, and for each archive kubectl-mautic_<os>_<arch>.tar.gz in --archives its
// platform, download URL and sha256.
//
//	go run ./hack/krew --version v1.2.3 --archives dist/krew > dist/krew/mautic.yaml
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"text/template"
)

// archiveName matches the plugin archives the release builds.
var archiveName = regexp.MustCompile(`^kubectl-mautic_([a-z0-9]+)_([a-z0-9]+)\.tar\.gz$`)

// versionPattern is the form krew requires of spec.version.
var versionPattern = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

// Manifest is what the template renders.
type Manifest struct {
	// Version is the release tag, e.g. v1.2.3.
	Version string
	// Platforms are the archives, in os/arch order.
	Platforms []Platform
}

// Platform is one plugin archive.
type Platform struct {
	// OS and Arch are the krew selector labels (GOOS and GOARCH).
	OS, Arch string
	// Archive is the file name in the GitHub release.
	Archive string
	// SHA256 is the archive's hex digest.
	SHA256 string
	// Ext is the binary's file extension: .exe on Windows.
	Ext string
}

func main() {
	version := flag.String("version", "", "Release tag, e.g. v1.2.3 (required).")
	archives := flag.String("archives", "dist/krew", "Directory holding kubectl-mautic_<os>_<arch>.tar.gz archives.")
	tmpl := flag.String("template", "hack/krew/mautic.yaml", "Manifest template.")
	flag.Parse()
	m, err := Collect(*version, *archives)
	if err == nil {
		err = Render(os.Stdout, *tmpl, m)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "krew:", err)
		os.Exit(1)
	}
}

// Collect reads the archives in dir into the manifest of version.
func Collect(version, dir string) (Manifest, error) {
	if !versionPattern.MatchString(version) {
		return Manifest{}, fmt.Errorf("--version %q is not a release tag like v1.2.3: krew needs semantic versions", version)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("reading the archives: %w (build them with make krew-manifest)", err)
	}
	m := Manifest{Version: version}
	for _, e := range entries {
		match := archiveName.FindStringSubmatch(e.Name())
		if match == nil {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return Manifest{}, err
		}
		p := Platform{OS: match[1], Arch: match[2], Archive: e.Name(), SHA256: sum}
		if p.OS == "windows" {
			p.Ext = ".exe"
		}
		m.Platforms = append(m.Platforms, p)
	}
	if len(m.Platforms) == 0 {
		return Manifest{}, fmt.Errorf("no kubectl-mautic_<os>_<arch>.tar.gz in %s: build them with make krew-manifest", dir)
	}
	sort.Slice(m.Platforms, func(i, j int) bool { return m.Platforms[i].Archive < m.Platforms[j].Archive })
	return m, nil
}

// Render writes the manifest through the template file.
func Render(w io.Writer, templateFile string, m Manifest) error {
	t, err := template.New(filepath.Base(templateFile)).Option("missingkey=error").ParseFiles(templateFile)
	if err != nil {
		return err
	}
	return t.Execute(w, m)
}

// fileSHA256 is the hex sha256 of a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // the release archive named on the command line
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
