// Package version holds the release version and commit of the binaries. `make build` and `make
// image` set them with the linker:
//
//	go build -ldflags "-X github.com/mautic-operator/mautic-operator/internal/version.Version=v1.2.3 \
//	    -X github.com/mautic-operator/mautic-operator/internal/version.Commit=$(git rev-parse HEAD)"
//
// A plain `go build` or `go run` leaves the defaults, "dev" and "unknown".
package version

import "fmt"

// Version is the release version, e.g. v1.2.3 (`git describe --tags --always --dirty`).
var Version = "dev"

// Commit is the full git commit the binary was built from.
var Commit = "unknown"

// String is "<Version> (commit <Commit>)", what `manager --version` and `kubectl mautic version`
// print.
func String() string {
	return fmt.Sprintf("%s (commit %s)", Version, Commit)
}
