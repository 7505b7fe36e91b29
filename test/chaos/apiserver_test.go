package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// findAPIServer returns the pid of the kube-apiserver serving host (env.Config.Host, e.g.
// https://127.0.0.1:40123): the process whose command line is kube-apiserver with that
// --secure-port. Other engineers' envtest control planes may run on the same machine; the port
// tells them apart.
func findAPIServer(host string) (int, error) {
	u, err := url.Parse(host)
	if err != nil || u.Port() == "" {
		return 0, fmt.Errorf("the API server address %q has no port", host)
	}
	want := []byte("--secure-port=" + u.Port())
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("the outage events freeze the kube-apiserver found in /proc, which cannot be read here: %w", err)
	}
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if filepath.Base(string(args[0])) != "kube-apiserver" {
			continue
		}
		for _, arg := range args[1:] {
			if bytes.Equal(arg, want) {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with %s found in /proc", want)
}

// freezeProcess stops pid with SIGSTOP: its sockets stay open and every request to it hangs, as
// with an API server that is partitioned away or stuck.
func freezeProcess(pid int) error {
	if pid <= 0 {
		return errors.New("no process to freeze")
	}
	return syscall.Kill(pid, syscall.SIGSTOP)
}

// resumeProcess continues pid with SIGCONT; harmless on a running process.
func resumeProcess(pid int) error {
	if pid <= 0 {
		return nil
	}
	return syscall.Kill(pid, syscall.SIGCONT)
}
