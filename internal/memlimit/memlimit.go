// Package memlimit gives the Go runtime a soft memory limit below the container's, so that the
// collector works harder as the manager nears its limit instead of letting the heap grow to twice
// its live size and the kernel kill the container. GOMEMLIMIT, when set, wins.
package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Ratio is the share of the container's memory limit the Go runtime aims to stay under; the rest
// is left for memory the runtime does not manage (stacks it cannot move, the binary, the kernel's
// accounting of page cache).
const Ratio = 0.9

// unlimited is the least cgroup v1 value that means "no limit" (the kernel writes the largest
// page-aligned int64).
const unlimited = 1 << 60

// limitFiles are the memory limit of this process's cgroup as a container sees it: cgroup v2,
// cgroup v2 mounted beside v1, and cgroup v1.
var limitFiles = []string{
	"memory.max",
	"unified/memory.max",
	"memory/memory.limit_in_bytes",
}

// Configure sets the runtime's soft memory limit to Ratio of the cgroup's memory limit under
// cgroupRoot (normally /sys/fs/cgroup), unless GOMEMLIMIT is set. It returns the limit now in force
// (math.MaxInt64 for none) and where it came from: "GOMEMLIMIT", the cgroup file, or "" for none.
func Configure(cgroupRoot string) (int64, string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	limit, file := CgroupLimit(cgroupRoot)
	if limit <= 0 {
		return debug.SetMemoryLimit(-1), ""
	}
	soft := int64(float64(limit) * Ratio)
	debug.SetMemoryLimit(soft)
	return soft, file
}

// CgroupLimit reads the memory limit of the cgroup under root from the first of limitFiles that
// holds one; 0 when none does (no file, "max", or a value that means no limit).
func CgroupLimit(root string) (int64, string) {
	for _, name := range limitFiles {
		path := filepath.Join(root, name)
		data, err := os.ReadFile(path) //nolint:gosec // G304: a cgroup file of a fixed list under the cgroup root
		if err != nil {
			continue
		}
		if limit := parseLimit(string(data)); limit > 0 {
			return limit, path
		}
	}
	return 0, ""
}

// parseLimit reads a cgroup memory limit: bytes, or "max"; 0 for no limit or anything else.
func parseLimit(value string) int64 {
	value = strings.TrimSpace(value)
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n <= 0 || n >= unlimited || n == math.MaxInt64 {
		return 0
	}
	return n
}
