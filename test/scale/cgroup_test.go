package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memoryCgroup is a memory cgroup with a limit that the harness moves the manager into, as a
// container's limit would hold it (SCALE_MANAGER_MEMORY_LIMIT). Both cgroup v1 and v2 are handled.
// The manager is moved right after it starts, so the little it allocated before is charged to the
// harness's cgroup.
type memoryCgroup struct {
	dir string
	v2  bool
}

// newMemoryCgroup creates the cgroup mautic-scale-<pid> with limitBytes under the memory hierarchy.
func newMemoryCgroup(limitBytes int64) (*memoryCgroup, error) {
	name := fmt.Sprintf("mautic-scale-%d", os.Getpid())
	cg := &memoryCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	limitFile := "memory.limit_in_bytes"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = &memoryCgroup{dir: filepath.Join("/sys/fs/cgroup", name), v2: true}
		limitFile = "memory.max"
	}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the memory cgroup (root needed): %w", err)
	}
	if err := os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatInt(limitBytes, 10)), 0o644); err != nil {
		_ = os.Remove(cg.dir)
		return nil, fmt.Errorf("setting the memory cgroup's limit: %w", err)
	}
	return cg, nil
}

// add moves the process pid into the cgroup.
func (c *memoryCgroup) add(pid int) error {
	return os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// peakKiB is the most memory the cgroup was charged (anonymous memory and page cache), in KiB.
func (c *memoryCgroup) peakKiB() int {
	file := "memory.max_usage_in_bytes"
	if c.v2 {
		file = "memory.peak"
	}
	n, err := readInt(filepath.Join(c.dir, file))
	if err != nil {
		return -1
	}
	return int(n / 1024)
}

// oomKills is how many processes of the cgroup the kernel killed for memory.
func (c *memoryCgroup) oomKills() int {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	data, err := os.ReadFile(filepath.Join(c.dir, file))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(value))
			return n
		}
	}
	return -1
}

// remove deletes the cgroup once no process is left in it.
func (c *memoryCgroup) remove() error {
	return os.Remove(c.dir)
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}
