//go:build tools

// Package etcd pins the etcd server that envtest runs against.
package etcd

import _ "go.etcd.io/etcd/server/v3"
