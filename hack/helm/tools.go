//go:build tools

// Package tools records the helm command as a dependency of this module; the Makefile builds it
// with `go build helm.sh/helm/v3/cmd/helm`.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
