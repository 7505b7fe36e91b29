package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// windowMetric is the manager's histogram of the time from Mautic's answer until the rotated
	// refresh token was durable.
	windowMetric = "mautic_operator_refresh_token_unpersisted_seconds"
	// leaderMetric is controller-runtime's gauge, 1 while the process leads.
	leaderMetric = "leader_election_master_status"
	// mauticTimeout is the manager's --mautic-timeout: short, so that a held request and a
	// shutdown that waits for it stay quick.
	mauticTimeout = 5 * time.Second
	// stopTimeout is how long a SIGTERM gets before localenv kills the manager: longer than the
	// manager's graceful shutdown (claim 10s + mautic timeout + persist 10s + a margin).
	stopTimeout = 60 * time.Second
	// restartDelay is how soon an exited manager is started again, as a kubelet restarts a container;
	// a manager that dies young waits longer, up to maxRestartDelay (a kubelet's CrashLoopBackOff).
	restartDelay    = 500 * time.Millisecond
	maxRestartDelay = 8 * time.Second
	// scrapeInterval is how often every running manager's metrics are read.
	scrapeInterval = time.Second
)

// exit is one end of a manager process that nobody asked for.
type exit struct {
	slot, status, reason string
	at                   time.Time
	log                  string
}

// process is one run of the manager binary.
type process struct {
	slot    *slot
	number  int
	manager *localenv.ManagerProcess
	started time.Time
	// killed is set before the driver SIGKILLs it, so that its end is not counted as a crash.
	killed atomic.Bool
}

// name is "A#3": slot A, third process.
func (p *process) name() string { return fmt.Sprintf("%s#%d", p.slot.name, p.number) }

// slot is one manager replica, restarted whenever its process ends, like a pod's container,
// with the same flags and the same pending directory.
type slot struct {
	name                   string
	pendingDir             string
	probeAddr, metricsAddr string
	args                   []string
	binary, logDir         string
	env                    *localenv.Env
	mu                     sync.Mutex
	current                *process
	processes              int
	crashes                []exit
}

// managers supervises the slots and keeps the last metrics of every process.
type managers struct {
	slots []*slot
	// pendingDirs are the pending directories: one for all slots, or one per slot.
	pendingDirs []string
	httpClient  *http.Client

	mu sync.Mutex
	// windows holds the last unpersisted-window histogram scraped from each process, by name.
	windows map[string]histogram
	wg      sync.WaitGroup
}

// newManagers prepares count slots. With sharedPending every process of the run gets one pending
// directory; otherwise each slot has its own, as each replica of a Deployment has its own emptyDir
// that survives its container's restarts.
func newManagers(s *suite, count int, namespace string, sharedPending bool) (*managers, error) {
	ms := &managers{
		httpClient: &http.Client{Timeout: 2 * time.Second},
		windows:    map[string]histogram{},
	}
	for i := range count {
		probe, err := localenv.FreeLocalAddress()
		if err != nil {
			return nil, err
		}
		metrics, err := localenv.FreeLocalAddress()
		if err != nil {
			return nil, err
		}
		name := string(rune('A' + i))
		pendingDir := filepath.Join(s.workDir, "pending")
		if !sharedPending {
			pendingDir = filepath.Join(s.workDir, "pending-"+name)
		}
		if i == 0 || !sharedPending {
			ms.pendingDirs = append(ms.pendingDirs, pendingDir)
		}
		ms.slots = append(ms.slots, &slot{
			name:        name,
			pendingDir:  pendingDir,
			probeAddr:   probe,
			metricsAddr: metrics,
			binary:      s.managerBinary,
			logDir:      s.workDir,
			env:         s.env,
			args: []string{
				"--health-probe-bind-address=" + probe,
				"--metrics-bind-address=" + metrics,
				"--metrics-secure=false",
				"--leader-elect",
				"--leader-election-namespace=" + namespace,
				"--watch-namespaces=" + namespace,
				"--pending-refresh-token-dir=" + pendingDir,
				"--mautic-timeout=" + mauticTimeout.String(),
				// Eight connections rotating every second or two exceed the default 5 requests/s per host.
				"--mautic-requests-per-second=100",
				"--mautic-burst=100",
				// The 3-second access tokens of the run are renewed every 1 to 2 seconds, more often
				// than the default one token request a minute per connection allows.
				"--min-token-interval=500ms",
			},
		})
	}
	return ms, nil
}

// run starts every slot's supervisor and the metrics scraper until ctx ends; then every manager
// is stopped with SIGTERM.
func (ms *managers) run(ctx context.Context) {
	for _, sl := range ms.slots {
		ms.wg.Add(1)
		go func() {
			defer ms.wg.Done()
			sl.supervise(ctx)
		}()
	}
	ms.wg.Add(1)
	go func() {
		defer ms.wg.Done()
		ticker := time.NewTicker(scrapeInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				for _, sl := range ms.slots {
					if p := sl.process(); p != nil {
						_, _ = ms.scrape(ctx, p)
					}
				}
			}
		}
	}()
}

// wait waits for the supervisors, which stop their managers once ctx ends.
func (ms *managers) wait() { ms.wg.Wait() }

// supervise keeps a manager process running until ctx ends.
func (sl *slot) supervise(ctx context.Context) {
	delay := restartDelay
	for {
		p, err := sl.start()
		if err != nil {
			sl.recordCrash(exit{slot: sl.name, status: "not started", reason: err.Error(), at: time.Now()})
		} else {
			select {
			case <-p.manager.Done():
			case <-ctx.Done():
				_ = p.manager.Stop()
				return
			}
			asked := p.manager.Stopped() || p.killed.Load()
			if !asked {
				sl.recordCrash(exit{slot: p.name(), status: p.manager.ExitStatus(), reason: exitReason(p.manager.LogPath),
					at: time.Now(), log: p.manager.LogPath})
			}
			_ = p.manager.Stop() // the process is gone: this closes its log
			if time.Since(p.started) < 5*time.Second {
				delay = min(delay*2, maxRestartDelay)
			} else {
				delay = restartDelay
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// start starts a new manager process in the slot.
func (sl *slot) start() (*process, error) {
	sl.mu.Lock()
	sl.processes++
	number := sl.processes
	sl.mu.Unlock()
	p := &process{slot: sl, number: number}
	m, err := sl.env.StartManager(localenv.ManagerOptions{
		Binary:      sl.binary,
		Args:        sl.args,
		LogPath:     filepath.Join(sl.logDir, fmt.Sprintf("manager-%s-%03d.log", sl.name, number)),
		StopTimeout: stopTimeout,
	})
	if err != nil {
		return nil, err
	}
	p.manager, p.started = m, time.Now()
	sl.mu.Lock()
	sl.current = p
	sl.mu.Unlock()
	return p, nil
}

// process returns the slot's running process, or nil between runs.
func (sl *slot) process() *process {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.current == nil {
		return nil
	}
	select {
	case <-sl.current.manager.Done():
		return nil
	default:
		return sl.current
	}
}

func (sl *slot) recordCrash(e exit) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.crashes = append(sl.crashes, e)
}

// exitReason reads why a manager ended from the last lines of its log.
func exitReason(logPath string) string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return "log unreadable"
	}
	text := string(data)
	if len(text) > 16<<10 {
		text = text[len(text)-16<<10:]
	}
	switch {
	case strings.Contains(text, "leader election lost") || strings.Contains(text, "leaderelection lost"):
		return "leader election lost"
	case strings.Contains(text, "panic:"):
		return "panic"
	case strings.Contains(text, "Manager stopped"):
		return "manager stopped with an error"
	default:
		return "unknown (see its log)"
	}
}

// crashes returns every unasked exit so far.
func (ms *managers) crashes() []exit {
	var all []exit
	for _, sl := range ms.slots {
		sl.mu.Lock()
		all = append(all, sl.crashes...)
		sl.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	return all
}

// processCount returns how many manager processes were started.
func (ms *managers) processCount() int {
	n := 0
	for _, sl := range ms.slots {
		sl.mu.Lock()
		n += sl.processes
		sl.mu.Unlock()
	}
	return n
}

// leader returns the running process that says it leads, scraping each afresh; nil when none does.
func (ms *managers) leader(ctx context.Context) *process {
	for _, sl := range ms.slots {
		p := sl.process()
		if p == nil {
			continue
		}
		if snapshot, err := ms.scrape(ctx, p); err == nil && snapshot.leader {
			return p
		}
	}
	return nil
}

// waitLeader waits until a running process leads, or timeout.
func (ms *managers) waitLeader(ctx context.Context, timeout time.Duration) *process {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if p := ms.leader(ctx); p != nil {
			return p
		}
		sleep(ctx, 250*time.Millisecond)
	}
	return nil
}

// running returns the running processes.
func (ms *managers) running() []*process {
	var list []*process
	for _, sl := range ms.slots {
		if p := sl.process(); p != nil {
			list = append(list, p)
		}
	}
	return list
}

// kill SIGKILLs the process's group at once and waits until it is gone. Callers scrape its
// metrics first, when they can afford the milliseconds that takes.
func (ms *managers) kill(p *process) {
	p.killed.Store(true)
	_ = syscall.Kill(-p.manager.Pid, syscall.SIGKILL)
	<-p.manager.Done()
}

// terminate SIGTERMs the process (localenv's Stop) and returns how long it took to exit and
// whether it had to be killed after stopTimeout.
func (ms *managers) terminate(ctx context.Context, p *process) (time.Duration, error) {
	_, _ = ms.scrape(ctx, p)
	start := time.Now()
	err := p.manager.Stop()
	return time.Since(start), err
}

// snapshot is what one scrape of a manager's metrics says.
type snapshot struct {
	leader bool
	window histogram
}

// scrape reads the process's metrics and keeps its window histogram.
func (ms *managers) scrape(ctx context.Context, p *process) (snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.slot.metricsAddr+"/metrics", nil)
	if err != nil {
		return snapshot{}, err
	}
	resp, err := ms.httpClient.Do(req)
	if err != nil {
		return snapshot{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return snapshot{}, fmt.Errorf("metrics of %s: HTTP %d", p.name(), resp.StatusCode)
	}
	snap, err := parseMetrics(resp.Body)
	if err != nil {
		return snapshot{}, err
	}
	if snap.window.count > 0 {
		ms.mu.Lock()
		ms.windows[p.name()] = snap.window
		ms.mu.Unlock()
	}
	return snap, nil
}

// window returns the unpersisted-window histogram summed over every process's last scrape.
func (ms *managers) window() histogram {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var total histogram
	for _, h := range ms.windows {
		total = total.add(h)
	}
	return total
}

// parseMetrics reads the two series the suite needs from Prometheus's text format.
func parseMetrics(r io.Reader) (snapshot, error) {
	var snap snapshot
	buckets := map[float64]float64{}
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, value, ok := splitSample(line)
		if !ok {
			continue
		}
		switch name {
		case leaderMetric:
			snap.leader = value == 1
		case windowMetric + "_bucket":
			le, ok := labelValue(labels, "le")
			if !ok {
				continue
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue
			}
			buckets[bound] = value
		case windowMetric + "_sum":
			snap.window.sum = value
		case windowMetric + "_count":
			snap.window.count = value
		}
	}
	if err := scanner.Err(); err != nil {
		return snap, err
	}
	for bound := range buckets {
		snap.window.bounds = append(snap.window.bounds, bound)
	}
	sort.Float64s(snap.window.bounds)
	for _, bound := range snap.window.bounds {
		snap.window.cumulative = append(snap.window.cumulative, buckets[bound])
	}
	return snap, nil
}

// splitSample splits `name{labels} value [timestamp]`.
func splitSample(line string) (name, labels string, value float64, ok bool) {
	var rest string
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", "", 0, false
		}
		name, labels, rest = line[:i], line[i+1:j], line[j+1:]
	} else {
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			return "", "", 0, false
		}
		name, rest = line[:i], line[i:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", "", 0, false
	}
	return name, labels, v, true
}

// labelValue returns a label's value from `a="x",b="y"` (values without escaped quotes).
func labelValue(labels, key string) (string, bool) {
	for _, pair := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && k == key {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// histogram is a Prometheus histogram: cumulative counts by upper bound, +Inf last.
type histogram struct {
	bounds     []float64
	cumulative []float64
	sum, count float64
}

// add returns the sum of two histograms with the same buckets (an empty one takes the other's).
func (h histogram) add(other histogram) histogram {
	if len(h.bounds) == 0 {
		return histogram{bounds: append([]float64(nil), other.bounds...), cumulative: append([]float64(nil), other.cumulative...),
			sum: other.sum, count: other.count}
	}
	out := histogram{bounds: h.bounds, cumulative: append([]float64(nil), h.cumulative...), sum: h.sum + other.sum, count: h.count + other.count}
	for i := range out.cumulative {
		if i < len(other.cumulative) {
			out.cumulative[i] += other.cumulative[i]
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile does: linear
// interpolation inside the bucket that holds it. It returns +Inf when the quantile falls in the
// +Inf bucket and NaN for an empty histogram.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	total := h.cumulative[len(h.cumulative)-1]
	rank := q * total
	for i, bound := range h.bounds {
		if h.cumulative[i] < rank {
			continue
		}
		if math.IsInf(bound, 1) {
			return bound
		}
		lower, below := 0.0, 0.0
		if i > 0 {
			lower, below = h.bounds[i-1], h.cumulative[i-1]
		}
		inBucket := h.cumulative[i] - below
		if inBucket == 0 {
			return bound
		}
		return lower + (bound-lower)*(rank-below)/inBucket
	}
	return h.bounds[len(h.bounds)-1]
}

// bucketOf returns the upper bound of the bucket holding the q-quantile.
func (h histogram) bucketOf(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * h.cumulative[len(h.cumulative)-1]
	for i, bound := range h.bounds {
		if h.cumulative[i] >= rank {
			return bound
		}
	}
	return math.Inf(1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
