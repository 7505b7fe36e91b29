package main

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// platformImage is the image of one platform of the index.
type platformImage struct {
	platform v1.Platform
	image    v1.Image
}

// binaryImage is the OCI image of one platform: the binary's layer, the non-root user, the binary
// as entrypoint, the labels and environment of opts, and opts.Epoch as every time.
func binaryImage(binFile string, p v1.Platform, opts Options) (v1.Image, error) {
	layer, err := binaryLayer(binFile, opts.BinaryPath, opts.Epoch)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(opts.Env))
	for _, k := range sortedKeys(opts.Env) {
		env = append(env, k+"="+opts.Env[k])
	}
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      v1.Time{Time: opts.Epoch},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       NonRootUser,
			Entrypoint: []string{opts.BinaryPath},
			Env:        env,
			Labels:     opts.Labels,
			WorkingDir: "/",
		},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: opts.Epoch},
			CreatedBy: fmt.Sprintf("hack/image: go build %s as %s", opts.Package, opts.BinaryPath),
			Comment:   "the static binary, the only file of the image",
		},
	})
}

// imageIndex is the OCI image index of the per-platform images, in the order given.
func imageIndex(images []platformImage) (v1.ImageIndex, error) {
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, pi := range images {
		p := pi.platform
		adds = append(adds, mutate.IndexAddendum{Add: pi.image, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}
