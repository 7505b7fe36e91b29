package localenv

import "syscall"

// managerProcAttr puts the manager in its own process group, and has the kernel send it SIGTERM
// should the parent die without stopping it (a killed test binary, say), so that no manager
// outlives its control plane.
func managerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
