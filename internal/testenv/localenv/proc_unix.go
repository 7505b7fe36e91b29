//go:build unix && !linux

package localenv

import "syscall"

// managerProcAttr puts the manager in its own process group.
func managerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
