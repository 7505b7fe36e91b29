package scale

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// memory is the manager's memory at one moment: what the kernel counts (RSS) and what the Go heap
// holds live after a forced collection, which RSS hides behind the collector's headroom (by default
// the heap may grow to twice its live size before a collection) and pages not yet returned.
type memory struct {
	rssKiB  int
	heapKiB int
}

func (m memory) String() string {
	return fmt.Sprintf("%s (live heap %s)", mib(m.rssKiB), mib(m.heapKiB))
}

// managerMemory reads the memory of the manager with pid, whose profiles are served at
// profilingAddr, and keeps its heap profile as <dir>/heap-<name>.pprof for `go tool pprof`.
func managerMemory(ctx context.Context, pid int, profilingAddr, dir, name string) memory {
	m := memory{rssKiB: rssKiB(pid), heapKiB: -1}
	if text, err := fetchProfile(ctx, profilingAddr, "gc=1&debug=1"); err == nil {
		m.heapKiB = heapAllocKiB(text)
	}
	if raw, err := fetchProfile(ctx, profilingAddr, "gc=1"); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "heap-"+name+".pprof"), raw, 0o644)
	}
	return m
}

// fetchProfile reads the heap profile at addr with the query; gc=1 collects garbage first.
func fetchProfile(ctx context.Context, addr, query string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?"+query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("heap profile: HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// heapAllocKiB reads "# HeapAlloc = N" (bytes) from a heap profile in text form; -1 without it.
func heapAllocKiB(profile []byte) int {
	for _, line := range strings.Split(string(profile), "\n") {
		if value, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				return -1
			}
			return n / 1024
		}
	}
	return -1
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	return -1
}

func mib(kib int) string {
	if kib < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}
