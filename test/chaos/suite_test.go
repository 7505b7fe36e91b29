// Package chaos runs the manager binary, as built from cmd/manager, through a storm of failures
// and counts what the refresh-token rotation of AuthorizationCode connections survives: SIGTERM
// (also while a token request is held), SIGKILL, a frozen kube-apiserver, and Mautic faults (5xx,
// slow and timed-out requests, connections dropped after Mautic rotated, unusable 2xx answers with
// and without a refresh token, fractional expires_in). docs/reliability.md explains the guarantees
// and holds the report of one long run.
//
// `make test` runs a short run (CHAOS_DURATION, default 60s); `make test-chaos` a long one that
// writes its report to CHAOS_REPORT. The environment variables are read by TestMain:
//
//	CHAOS_DURATION       how long events are injected (default 60s); the first cycle of events,
//	                     which has every kind once, always completes
//	CHAOS_SEED           the seed of the event schedule (default: from the clock; printed)
//	CHAOS_CONNECTIONS    AuthorizationCode connections (default 8)
//	CHAOS_MANAGERS       manager replicas with leader election (default 1, as config/manager deploys)
//	CHAOS_PENDING        per-replica (default: each replica keeps one pending directory across its
//	                     restarts, as a pod's emptyDir) or shared (one directory for every process)
//	CHAOS_OUTAGE         how long the API server is frozen, "min-max" (default 15s-20s; 15s-30s
//	                     for runs of 5 minutes or more)
//	CHAOS_MIN_ROTATIONS  rotations the run must reach (default 50; 500 for runs of 10 minutes or more)
//	CHAOS_REPORT         a file that receives the markdown report
//	CHAOS_KINDS          a comma-separated subset of the event kinds (driver_test.go), to reproduce one
//	CHAOS_COMMAND        the command to name in the report (default the go test command line)
//	CHAOS_KEEP           keep the work directory (manager logs) even when the run passes
//
// The suite never prints a token: tokens are compared with bytes.Equal or checked against the
// test server, never handed to a gomega matcher that would print them.
package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mautic-operator/mautic-operator/internal/testenv"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// accessTokenLifetime is the test server's access-token lifetime: with renewBeforePercentage
	// 50 each connection rotates its refresh token every 1 to 2 seconds.
	accessTokenLifetime = 3 * time.Second
	// setupTimeout bounds building the manager and starting the control plane.
	setupTimeout = 4 * time.Minute
	// shortDefaultDuration is the chaos of `make test`.
	shortDefaultDuration = 60 * time.Second
)

// config is what the environment asks of the run.
type config struct {
	duration     time.Duration
	seed         int64
	connections  int
	managers     int
	outageMin    time.Duration
	outageMax    time.Duration
	minRotations int
	reportPath   string
	command      string
	keep         bool
	kinds        []*kind
	// sharedPending gives every manager process one pending directory (CHAOS_PENDING=shared)
	// instead of one per replica.
	sharedPending bool
}

// suite is what TestMain started.
type suite struct {
	cfg           config
	env           *localenv.Env
	workDir       string
	managerBinary string
	// apiServerPid is the envtest kube-apiserver process that the outage events freeze.
	apiServerPid int
}

var (
	shared *suite
	// setupErr says why the suite could not start; every test fails with it.
	setupErr error
)

func TestMain(m *testing.M) {
	if _, err := testenv.AssetsDir(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("TEST_LOG") != "" {
		ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrllog.SetLogger(logr.Discard())
	}
	cfg, err := readConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	workDir, err := os.MkdirTemp("", "mautic-operator-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	s, err := setUp(ctx, cfg, workDir)
	cancel()
	shared, setupErr = s, err
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos setup failed: %v\n", err)
	}
	code := m.Run()
	if s != nil && s.env != nil {
		// Never leave the API server frozen, whatever happened.
		_ = resumeProcess(s.apiServerPid)
		if err := s.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the local environment: %v\n", err)
		}
	}
	if code == 0 && !cfg.keep {
		_ = os.RemoveAll(workDir)
	} else {
		fmt.Fprintf(os.Stderr, "chaos: the manager logs stay in %s\n", workDir)
	}
	os.Exit(code)
}

// setUp builds the manager and starts the control plane and the Mautic test server.
func setUp(ctx context.Context, cfg config, workDir string) (*suite, error) {
	build := exec.CommandContext(ctx, "go", "build", "-o", workDir+string(filepath.Separator), "../../cmd/manager")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	env, err := localenv.Start(localenv.Options{
		WorkDir:             workDir,
		AdminUser:           "chaos-admin",
		ClientName:          "mautic-operator chaos",
		AccessTokenLifetime: accessTokenLifetime,
	})
	if err != nil {
		return nil, err
	}
	s := &suite{cfg: cfg, env: env, workDir: workDir, managerBinary: filepath.Join(workDir, "manager")}
	if s.apiServerPid, err = findAPIServer(env.Config.Host); err != nil {
		return s, err
	}
	return s, nil
}

// requireSuite fails the test when the suite could not start.
func requireSuite(t *testing.T) *suite {
	t.Helper()
	if setupErr != nil {
		t.Fatalf("the chaos suite could not start: %v", setupErr)
	}
	return shared
}

// readConfig reads the CHAOS_* environment variables.
func readConfig() (config, error) {
	cfg := config{
		duration:    shortDefaultDuration,
		seed:        time.Now().UnixNano() % 1_000_000_000,
		connections: 8,
		managers:    1,
		reportPath:  os.Getenv("CHAOS_REPORT"),
		command:     os.Getenv("CHAOS_COMMAND"),
		keep:        os.Getenv("CHAOS_KEEP") != "",
	}
	var err error
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		if cfg.duration, err = time.ParseDuration(v); err != nil || cfg.duration <= 0 {
			return cfg, fmt.Errorf("CHAOS_DURATION=%q is not a positive duration such as 10m", v)
		}
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		if cfg.seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			return cfg, fmt.Errorf("CHAOS_SEED=%q is not an integer", v)
		}
	}
	for name, target := range map[string]*int{"CHAOS_CONNECTIONS": &cfg.connections, "CHAOS_MANAGERS": &cfg.managers} {
		if v := os.Getenv(name); v != "" {
			if *target, err = strconv.Atoi(v); err != nil || *target < 1 {
				return cfg, fmt.Errorf("%s=%q is not a positive integer", name, v)
			}
		}
	}
	cfg.outageMin, cfg.outageMax = 15*time.Second, 20*time.Second
	if cfg.duration >= 5*time.Minute {
		cfg.outageMax = 30 * time.Second
	}
	if v := os.Getenv("CHAOS_OUTAGE"); v != "" {
		low, high, _ := strings.Cut(v, "-")
		if high == "" {
			high = low
		}
		cfg.outageMin, err = time.ParseDuration(low)
		if err == nil {
			cfg.outageMax, err = time.ParseDuration(high)
		}
		if err != nil || cfg.outageMin <= 0 || cfg.outageMax < cfg.outageMin {
			return cfg, fmt.Errorf("CHAOS_OUTAGE=%q is not a range such as 15s-30s", v)
		}
	}
	cfg.minRotations = 50
	if cfg.duration >= 10*time.Minute {
		cfg.minRotations = 500
	}
	if v := os.Getenv("CHAOS_MIN_ROTATIONS"); v != "" {
		if cfg.minRotations, err = strconv.Atoi(v); err != nil || cfg.minRotations < 0 {
			return cfg, fmt.Errorf("CHAOS_MIN_ROTATIONS=%q is not a count", v)
		}
	}
	switch v := os.Getenv("CHAOS_PENDING"); v {
	case "", "per-replica":
	case "shared":
		cfg.sharedPending = true
	default:
		return cfg, fmt.Errorf("CHAOS_PENDING=%q is neither per-replica nor shared", v)
	}
	if cfg.kinds, err = selectKinds(os.Getenv("CHAOS_KINDS")); err != nil {
		return cfg, fmt.Errorf("CHAOS_KINDS: %w", err)
	}
	if cfg.command == "" {
		cfg.command = fmt.Sprintf("CHAOS_DURATION=%s CHAOS_SEED=%d go test -count=1 -v ./test/chaos/...", cfg.duration, cfg.seed)
	}
	return cfg, nil
}
