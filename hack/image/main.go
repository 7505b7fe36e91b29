// Command image builds an OCI image of a Go main package without a container engine: a static
// binary (CGO_ENABLED=0, -trimpath, no build ID) as the only file of a single layer, run as the
// non-root user 65532:65532 with the binary as entrypoint and no shell, for every platform of
// --platforms (an OCI image index). The output is reproducible: the same sources, ldflags and
// --epoch give the same digest, because every time in the image and in its tar files is --epoch
// and every tar lists its entries in a fixed order.
//
// It writes an OCI image layout directory (--oci-layout) and/or a tar archive of that layout
// (--tarball) that `ctr -n k8s.io images import` reads; the image name (--name) is recorded in the
// layout's index.json, so containerd imports the image under that name.
//
// The tool is its own Go module (hack/image/go.mod): go-containerregistry and its dependencies
// serve the release build only, so the operator's go.mod does not carry them, the same reason the
// code generators live in hack/tools.
//
//	image --package ./cmd/manager --name ghcr.io/mautic-operator/mautic-operator:dev \
//	    --platforms linux/amd64,linux/arm64 --ldflags "-X example.com/version.Version=v1.0.0" \
//	    --oci-layout bin/image/manager --tarball bin/image/manager.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	opts, outputs, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	idx, err := Build(ctx, opts)
	if err == nil {
		err = outputs.Write(idx, opts.Name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	digest, err := idx.Digest()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s@%s\n", opts.Name, digest)
}

// parseFlags reads the command line into the build options and the outputs.
func parseFlags(args []string) (Options, Outputs, error) {
	var opts Options
	var out Outputs
	var platforms, epoch string
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&opts.Package, "package", "", "Go main package to build, as `go build` takes it, e.g. ./cmd/manager (required).")
	fs.StringVar(&opts.Dir, "dir", ".", "Directory `go build` runs in: the module that holds --package.")
	fs.StringVar(&opts.Name, "name", "", "Image name recorded in the output, e.g. ghcr.io/mautic-operator/mautic-operator:dev (required).")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "Comma-separated os/arch[/variant] platforms of the image index.")
	fs.StringVar(&opts.LDFlags, "ldflags", "", "Extra -ldflags for `go build`, e.g. -X pkg.Version=v1.0.0; -s -w -buildid= are always set.")
	fs.StringVar(&opts.BinaryPath, "binary-path", "", "Path of the binary in the image and the entrypoint; default /<last element of --package>.")
	fs.StringVar(&epoch, "epoch", "", "Unix time of every file and of the image's creation; default $SOURCE_DATE_EPOCH, else the "+
		"commit time of HEAD in --dir (git log -1 --format=%ct), else 0.")
	fs.Var((*keyValues)(&opts.Labels), "label", "Image config label key=value; repeatable.")
	fs.Var((*keyValues)(&opts.Env), "env", "Environment variable KEY=value of the image config; repeatable.")
	fs.StringVar(&out.LayoutDir, "oci-layout", "", "Write the OCI image layout to this directory (replaced if it exists).")
	fs.StringVar(&out.Tarball, "tarball", "", "Write a tar archive of the OCI image layout to this file, for `ctr images import`.")
	if err := fs.Parse(args); err != nil {
		return opts, out, err
	}
	if fs.NArg() > 0 {
		return opts, out, fmt.Errorf("unexpected arguments %q: every input is a flag, e.g. --package %s", fs.Args(), fs.Arg(0))
	}
	if opts.Package == "" || opts.Name == "" {
		return opts, out, fmt.Errorf("--package and --name are required, e.g. --package ./cmd/manager --name example.com/manager:dev")
	}
	if out.LayoutDir == "" && out.Tarball == "" {
		return opts, out, fmt.Errorf("no output: set --oci-layout DIR and/or --tarball FILE")
	}
	var err error
	if opts.Platforms, err = ParsePlatforms(platforms); err != nil {
		return opts, out, err
	}
	if opts.Epoch, err = resolveEpoch(epoch, opts.Dir); err != nil {
		return opts, out, err
	}
	return opts, out, nil
}

// keyValues is a repeatable key=value flag.
type keyValues map[string]string

// String implements flag.Value.
func (kv *keyValues) String() string { return fmt.Sprint(map[string]string(*kv)) }

// Set implements flag.Value.
func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	if *kv == nil {
		*kv = map[string]string{}
	}
	(*kv)[k] = v
	return nil
}
