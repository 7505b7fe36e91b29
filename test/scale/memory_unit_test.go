package scale

import "testing"

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
