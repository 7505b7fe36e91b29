package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NonRootUser is the user and group the image runs as (distroless' "nonroot").
const NonRootUser = "65532:65532"

// Options say what to build.
type Options struct {
	// Package is the Go main package, as `go build` takes it.
	Package string
	// Dir is the directory `go build` runs in.
	Dir string
	// Name is the image name recorded in the output.
	Name string
	// Platforms are the platforms of the image index, one image each.
	Platforms []v1.Platform
	// LDFlags are appended to the fixed -s -w -buildid= linker flags.
	LDFlags string
	// BinaryPath is the absolute path of the binary in the image; empty means /<base of Package>.
	BinaryPath string
	// Epoch is the time of every file and of the image's creation.
	Epoch time.Time
	// Labels and Env go into the image config.
	Labels, Env map[string]string
}

// Build compiles the package for every platform and returns the image index of one single-layer
// image per platform.
func Build(ctx context.Context, opts Options) (v1.ImageIndex, error) {
	if opts.BinaryPath == "" {
		opts.BinaryPath = "/" + path.Base(filepath.ToSlash(opts.Package))
	}
	if !path.IsAbs(opts.BinaryPath) || path.Clean(opts.BinaryPath) != opts.BinaryPath || opts.BinaryPath == "/" {
		return nil, fmt.Errorf("binary path %q must be a clean absolute file path such as /manager", opts.BinaryPath)
	}
	if len(opts.Platforms) == 0 {
		return nil, fmt.Errorf("no platform: set --platforms, e.g. linux/amd64,linux/arm64")
	}
	tmp, err := os.MkdirTemp("", "image-build-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	images := make([]platformImage, 0, len(opts.Platforms))
	for i, p := range opts.Platforms {
		bin := filepath.Join(tmp, strconv.Itoa(i))
		if err := goBuild(ctx, opts, p, bin); err != nil {
			return nil, err
		}
		img, err := binaryImage(bin, p, opts)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", platformString(p), err)
		}
		images = append(images, platformImage{platform: p, image: img})
	}
	return imageIndex(images)
}

// goBuild compiles opts.Package for one platform into out: static, trimmed paths, no build ID
// and no VCS stamp, so the binary depends only on the sources, the Go version and the ldflags.
func goBuild(ctx context.Context, opts Options, p v1.Platform, out string) error {
	ldflags := strings.TrimSpace("-s -w -buildid= " + opts.LDFlags)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, opts.Package)
	cmd.Dir = opts.Dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// GOFLAGS is cleared so that a developer's -race or -cover cannot change the binary; the
	// microarchitecture levels are the defaults every node of the platform runs.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOOS="+p.OS, "GOARCH="+p.Architecture,
		"GOAMD64=v1", "GOARM64=v8.0", "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s in %s: %w", opts.Package, platformString(p), opts.Dir, err)
	}
	return nil
}

// ParsePlatforms reads a comma-separated list of os/arch[/variant] platforms.
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		parts := strings.Split(f, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("platform %q is not os/arch[/variant], e.g. linux/amd64 or linux/arm/v7", f)
		}
		p := v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		if seen[platformString(p)] {
			return nil, fmt.Errorf("platform %q is listed twice in --platforms", f)
		}
		seen[platformString(p)] = true
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform in %q: set --platforms, e.g. linux/amd64,linux/arm64", s)
	}
	return out, nil
}

// platformString is os/arch[/variant].
func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// resolveEpoch is the --epoch flag, else $SOURCE_DATE_EPOCH, else the commit time of HEAD in dir,
// else the Unix epoch.
func resolveEpoch(flagValue, dir string) (time.Time, error) {
	for _, c := range []struct{ name, value string }{{"--epoch", flagValue}, {"SOURCE_DATE_EPOCH", os.Getenv("SOURCE_DATE_EPOCH")}} {
		if c.value == "" {
			continue
		}
		sec, err := strconv.ParseInt(c.value, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("%s=%q is not a Unix time in seconds, e.g. $(git log -1 --format=%%ct)", c.name, c.value)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = dir
	if out, err := cmd.Output(); err == nil {
		if sec, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(sec, 0).UTC(), nil
		}
	}
	return time.Unix(0, 0).UTC(), nil
}
