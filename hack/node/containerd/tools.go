//go:build tools

// Package containerd pins the container runtime of the test bed: containerd 2
// (Kubernetes 1.37 needs a 2.x CRI), its ctr client and the runc shim.
// hack/node/build.sh builds them into a cache outside the clone.
package containerd

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
