//go:build tools

// Package kubeapiserver pins the kube-apiserver that envtest runs against;
// hack/controlplane.sh builds it into a cache outside the clone.
package kubeapiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
