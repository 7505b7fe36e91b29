package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		want     int64
		wantFile string
	}{
		{"cgroup v2 limit", map[string]string{"memory.max": "134217728\n"}, 134217728, "memory.max"},
		{"cgroup v2 without a limit", map[string]string{"memory.max": "max\n"}, 0, ""},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "268435456\n"}, 268435456, "memory/memory.limit_in_bytes"},
		{"cgroup v1 without a limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, ""},
		{"v2 beside v1, v2 unlimited, v1 limited", map[string]string{"unified/memory.max": "max", "memory/memory.limit_in_bytes": "536870912"}, 536870912, "memory/memory.limit_in_bytes"},
		{"not a number", map[string]string{"memory.max": "lots"}, 0, ""},
		{"no cgroup files", nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				path := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, file := CgroupLimit(root)
			wantFile := ""
			if tc.wantFile != "" {
				wantFile = filepath.Join(root, tc.wantFile)
			}
			if got != tc.want || file != wantFile {
				t.Errorf("CgroupLimit = %d, %q; want %d, %q", got, file, tc.want, wantFile)
			}
		})
	}
}

func TestConfigure(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	t.Setenv("GOMEMLIMIT", "")

	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte("100000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	limit, source := Configure(root)
	if limit != 90000000 || source != filepath.Join(root, "memory.max") {
		t.Errorf("Configure = %d, %q; want 90000000 from memory.max", limit, source)
	}
	if got := debug.SetMemoryLimit(-1); got != 90000000 {
		t.Errorf("runtime memory limit = %d, want 90000000", got)
	}

	t.Setenv("GOMEMLIMIT", "64MiB")
	debug.SetMemoryLimit(64 << 20) // what the runtime did with GOMEMLIMIT at start
	if limit, source := Configure(root); limit != 64<<20 || source != "GOMEMLIMIT" {
		t.Errorf("with GOMEMLIMIT: Configure = %d, %q; want %d from GOMEMLIMIT", limit, source, 64<<20)
	}
}
