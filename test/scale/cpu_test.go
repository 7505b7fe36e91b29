package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// cpuUse is the CPU time, user plus system, each process of the run had used at one moment: the
// manager, the API server, etcd, and this test process (the harness and the Mautic test servers).
type cpuUse map[string]time.Duration

// processCPU reads the CPU time of the manager with pid and of the run's other processes.
func processCPU(managerPid int) cpuUse {
	use := cpuUse{
		"manager":                         cpuTime(managerPid),
		"harness and Mautic test servers": cpuTime(os.Getpid()),
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		for _, pid := range childrenNamed(os.Getpid(), name) {
			use[name] += cpuTime(pid)
		}
	}
	return use
}

// minus is the CPU time used between before and u.
func (u cpuUse) minus(before cpuUse) cpuUse {
	d := cpuUse{}
	for k, v := range u {
		d[k] = v - before[k]
	}
	return d
}

// table renders the CPU time of each process over a phase that lasted took.
func (u cpuUse) table(title string, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n| process | CPU time | cores busy on average |\n|---|---:|---:|\n", title)
	for _, name := range []string{"manager", "kube-apiserver", "etcd", "harness and Mautic test servers"} {
		fmt.Fprintf(&b, "| %s | %s | %.2f |\n", name, u[name].Round(100*time.Millisecond), u[name].Seconds()/took.Seconds())
	}
	return b.String()
}

// cpuTime reads utime+stime of pid from /proc/<pid>/stat; 0 when it cannot.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return statCPU(string(data))
}

// statCPU parses utime and stime (fields 14 and 15) of a /proc/<pid>/stat line. The command name,
// field 2, is in parentheses and may hold spaces, so fields are counted after its closing one.
func statCPU(stat string) time.Duration {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(stat[end+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// childrenNamed lists the child processes of parent whose command name is name.
func childrenNamed(parent int, name string) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		stat := string(data)
		open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
		if open < 0 || end < open || stat[open+1:end] != name {
			continue
		}
		fields := strings.Fields(stat[end+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		if pid, err := strconv.Atoi(strings.Fields(stat)[0]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
