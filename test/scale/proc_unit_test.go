package scale

import (
	"testing"
	"time"
)

func TestHeapAllocKiB(t *testing.T) {
	for _, tc := range []struct {
		name    string
		profile string
		want    int
	}{
		{"a runtime.MemStats section", "heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 5\n# HeapAlloc = 52428800\n# Sys = 9\n", 51200},
		{"no MemStats", "heap profile: 1: 2 [3: 4] @ heap/1048576\n", -1},
		{"not a number", "# HeapAlloc = many\n", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := heapAllocKiB([]byte(tc.profile)); got != tc.want {
				t.Errorf("heapAllocKiB = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		want time.Duration
	}{
		{"utime and stime", "42 (manager) S 1 42 42 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 9 0 100 0 0", 3800 * time.Millisecond},
		{"a name with spaces and parentheses", "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 9 0 100 0 0", 30 * time.Millisecond},
		{"truncated", "42 (manager) S 1", 0},
		{"no name", "garbage", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statCPU(tc.stat); got != tc.want {
				t.Errorf("statCPU = %s, want %s", got, tc.want)
			}
		})
	}
}
