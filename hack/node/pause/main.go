// Command pause is the sandbox ("pause") image of the node test bed (hack/node): the process that
// holds a pod's namespaces. It waits for SIGTERM or SIGINT and exits 0, reaping any child it
// inherits as the pod's PID 1 meanwhile. Built into an image by the image tool like every other
// image of the test bed, so nothing is pulled from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
