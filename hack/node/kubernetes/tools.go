//go:build tools

// Package kubernetes pins the node components of the test bed: the kubelet,
// kube-proxy, kube-controller-manager and kube-scheduler of the same release as
// the control plane's kube-apiserver. hack/node/build.sh builds them into a
// cache outside the clone.
package kubernetes

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
