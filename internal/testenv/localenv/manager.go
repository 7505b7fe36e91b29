package localenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// DefaultStopTimeout is how long a manager gets to stop after SIGTERM before it is killed.
const DefaultStopTimeout = 10 * time.Second

// serviceAccountPrefix starts the user name of every ServiceAccount.
const serviceAccountPrefix = "system:serviceaccount:"

// ManagerOptions configure StartManager.
type ManagerOptions struct {
	// Binary is the manager executable; default bin/manager of the repository.
	Binary string
	// Args follow the --kubeconfig flag that StartManager adds.
	Args []string
	// Impersonate is the user the manager acts as, e.g.
	// "system:serviceaccount:mautic-operator-system:mautic-operator-controller-manager", so that
	// the API server authorizes it with that user's RBAC; the admin user does the impersonating.
	// Empty runs the manager as the admin (group system:masters).
	Impersonate string
	// ImpersonateGroups are the groups of the impersonated user; default, for a ServiceAccount,
	// system:serviceaccounts, system:serviceaccounts:<namespace> and system:authenticated, as a pod
	// would have; for another user, system:authenticated.
	ImpersonateGroups []string
	// Env is added to the environment the manager inherits, e.g. GOMEMLIMIT=230MiB.
	Env []string
	// LogPath receives the manager's stdout and stderr; default manager.log in the work directory.
	LogPath string
	// StopTimeout is how long Stop waits after SIGTERM before killing; default DefaultStopTimeout.
	StopTimeout time.Duration
}

// ManagerProcess is a manager binary running as a child process in its own process group, so that a
// Ctrl-C in the terminal reaches the parent only, which then stops the manager with one SIGTERM
// (a second signal would make the manager exit at once).
type ManagerProcess struct {
	// Pid is the process id.
	Pid int
	// Args are the command-line arguments, without the binary.
	Args []string
	// LogPath holds the manager's output.
	LogPath string
	// KubeconfigPath is the kubeconfig the manager uses.
	KubeconfigPath string

	cmd         *exec.Cmd
	log         *os.File
	stopTimeout time.Duration
	exited      chan struct{}
	waitErr     error // the process's exit error, set before exited is closed
	// stopRequested is set once Stop is called: an exit after that is no failure.
	stopRequested atomic.Bool

	stopOnce sync.Once
	stopErr  error
}

// StartManager starts the manager binary against the control plane, with its output going to a log
// file. Env.Stop stops it, as does ManagerProcess.Stop.
func (e *Env) StartManager(opts ManagerOptions) (*ManagerProcess, error) {
	binary := opts.Binary
	if binary == "" {
		binary = filepath.Join(e.Root, "bin", "manager")
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("%s not found: run `make build`, or `make demo`, which builds it", binary)
	}
	kubeconfig, err := e.managerKubeconfig(opts)
	if err != nil {
		return nil, err
	}
	logPath := opts.LogPath
	if logPath == "" {
		logPath = filepath.Join(e.WorkDir, "manager.log")
	}
	logFile, err := os.Create(logPath) //nolint:gosec // G304: the log path comes from the test harness or the demo
	if err != nil {
		return nil, fmt.Errorf("creating the manager log: %w", err)
	}
	// G204: the manager binary and its flags come from the test harness or the demo, not from input.
	// noctx: the manager's lifetime is ManagerProcess.Stop's to end (SIGTERM, then kill), not a context's.
	//nolint:gosec,noctx // a trusted binary whose lifetime ManagerProcess.Stop owns
	cmd := exec.Command(binary, append([]string{"--kubeconfig", kubeconfig}, opts.Args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if len(opts.Env) > 0 {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	cmd.SysProcAttr = managerProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	m := &ManagerProcess{
		Pid:            cmd.Process.Pid,
		Args:           cmd.Args[1:],
		LogPath:        logPath,
		KubeconfigPath: kubeconfig,
		cmd:            cmd,
		log:            logFile,
		stopTimeout:    opts.StopTimeout,
		exited:         make(chan struct{}),
	}
	if m.stopTimeout <= 0 {
		m.stopTimeout = DefaultStopTimeout
	}
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	e.mu.Lock()
	e.managers = append(e.managers, m)
	e.mu.Unlock()
	return m, nil
}

// managerKubeconfig returns the admin kubeconfig, or writes one that impersonates opts.Impersonate.
func (e *Env) managerKubeconfig(opts ManagerOptions) (string, error) {
	if opts.Impersonate == "" {
		return e.KubeconfigPath, nil
	}
	config, err := clientcmd.Load(e.adminConfig)
	if err != nil {
		return "", fmt.Errorf("reading the admin kubeconfig: %w", err)
	}
	groups := opts.ImpersonateGroups
	if len(groups) == 0 {
		groups = defaultGroups(opts.Impersonate)
	}
	for _, authInfo := range config.AuthInfos {
		authInfo.Impersonate = opts.Impersonate
		authInfo.ImpersonateGroups = groups
	}
	data, err := clientcmd.Write(*config)
	if err != nil {
		return "", fmt.Errorf("rendering the impersonating kubeconfig: %w", err)
	}
	path := filepath.Join(e.WorkDir, "kubeconfig-as-"+strings.NewReplacer(":", "_", "/", "_").Replace(opts.Impersonate))
	if err := e.writeKubeconfig(path, data); err != nil {
		return "", err
	}
	return path, nil
}

// defaultGroups returns the groups the API server gives user when it authenticates it itself.
func defaultGroups(user string) []string {
	const authenticated = "system:authenticated"
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	if !ok {
		return []string{authenticated}
	}
	namespace, _, _ := strings.Cut(rest, ":")
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, authenticated}
}

// Done is closed when the process has exited.
func (m *ManagerProcess) Done() <-chan struct{} { return m.exited }

// ExitStatus says how the process ended, e.g. "exit status 0", or "running".
func (m *ManagerProcess) ExitStatus() string {
	select {
	case <-m.exited:
	default:
		return "running"
	}
	if m.waitErr == nil {
		return "exit status 0"
	}
	return m.waitErr.Error()
}

// Stopped reports whether Stop has been called, so that the manager's exit was asked for.
func (m *ManagerProcess) Stopped() bool { return m.stopRequested.Load() }

// Stop sends SIGTERM to the manager's process group and waits for it to exit, killing the group
// after the stop timeout, which it reports as an error. Only the first call does anything; later
// calls return the same result.
func (m *ManagerProcess) Stop() error {
	m.stopRequested.Store(true)
	m.stopOnce.Do(func() {
		select {
		case <-m.exited:
		default:
			_ = signalGroup(m.Pid, syscall.SIGTERM)
			select {
			case <-m.exited:
			case <-time.After(m.stopTimeout):
				_ = signalGroup(m.Pid, syscall.SIGKILL)
				<-m.exited
				m.stopErr = fmt.Errorf("manager did not stop within %s after SIGTERM; killed it", m.stopTimeout)
			}
		}
		if err := m.log.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			m.stopErr = errors.Join(m.stopErr, err)
		}
	})
	return m.stopErr
}

// signalGroup sends sig to the process group led by pid, falling back to the process alone.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err == nil {
		return nil
	}
	return syscall.Kill(pid, sig)
}

// LogTail returns the last n lines of the manager's log, each indented by four spaces.
func (m *ManagerProcess) LogTail(n int) string {
	data, err := os.ReadFile(m.LogPath)
	if err != nil {
		return "    (cannot read: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
