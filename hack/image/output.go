package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations of the index.json entry that name the image: containerd's importer reads the first,
// other OCI tools the second.
const (
	containerdNameAnnotation = "io.containerd.image.name"
	ociRefNameAnnotation     = "org.opencontainers.image.ref.name"
)

// Outputs say where the image goes; at least one field is set.
type Outputs struct {
	// LayoutDir is the directory of the OCI image layout, replaced if it exists.
	LayoutDir string
	// Tarball is the tar archive of the OCI image layout.
	Tarball string
}

// Write writes idx under the name as an OCI image layout to LayoutDir and/or as its tar archive to
// Tarball.
func (o Outputs) Write(idx v1.ImageIndex, name string) error {
	dir := o.LayoutDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "image-layout-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		dir = filepath.Join(tmp, "layout")
	}
	if err := WriteLayout(dir, idx, name); err != nil {
		return err
	}
	if o.Tarball == "" {
		return nil
	}
	return TarDir(dir, o.Tarball)
}

// WriteLayout writes idx to a fresh OCI image layout in dir, its index.json naming it name.
func WriteLayout(dir string, idx v1.ImageIndex, name string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	annotations := map[string]string{containerdNameAnnotation: name, ociRefNameAnnotation: name}
	if err := p.AppendIndex(idx, layout.WithAnnotations(annotations)); err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return nil
}

// TarDir writes the files under dir to the tar archive out, in lexical order, owned by root, with
// the Unix epoch as every time, so that the same files give the same archive.
func TarDir(dir, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = src.Close() }()
		_, err = io.Copy(tw, src)
		return err
	})
	if walkErr != nil {
		_ = f.Close()
		return fmt.Errorf("tarball %s: %w", out, walkErr)
	}
	if err := tw.Close(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// sortedKeys are the keys of m in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
