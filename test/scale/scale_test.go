// Package scale measures the manager binary, as built from cmd/manager, with many
// ClientCredentials MauticConnections spread over many Mautic test servers, and writes a markdown
// report (docs/scale.md holds the report of one run). It is not part of `make test`: TestScale
// skips unless SCALE_CONNECTIONS is set; `make bench-scale` runs it. Environment:
//
//	SCALE_CONNECTIONS        MauticConnections to create (required, e.g. 1000)
//	SCALE_HOSTS              Mautic test servers, each its own host:port (default 50)
//	SCALE_UNRELATED_SECRETS  Secrets of 10 KiB in another namespace, unrelated to any connection (default 0)
//	SCALE_MANAGER_ARGS       extra manager flags, space-separated
//	SCALE_MANAGER_ENV        extra environment of the manager, space-separated, e.g. GOMEMLIMIT=230MiB
//	SCALE_MANAGER_MEMORY_LIMIT  run the manager in a memory cgroup with this limit, e.g. 256Mi (root)
//	SCALE_RESTART_WINDOW     how long the restarted manager is watched (default 30s)
//	SCALE_CYCLE_LIFETIME     access-token lifetime of the refresh cycle after the restart (default 5m; 0 skips the cycle)
//	SCALE_READY_TIMEOUT      how long all connections may take to become Ready (default 30m)
//	SCALE_REPORT             the markdown report (default bin/scale-report.md of the repository)
//	SCALE_COMMAND            the command to name in the report
package scale

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	connNamespace      = "scale"
	unrelatedNamespace = "scale-unrelated"
	unrelatedSize      = 10 * 1024
	creators           = 8
	// minCycleLifetime keeps the refresh cycle's renewal time (two thirds of the lifetime, less
	// up to half a twentieth of jitter) after the manager's minimum interval between token requests.
	minCycleLifetime = 2 * time.Minute
)

type params struct {
	connections, hosts, unrelated int
	extraArgs, extraEnv           []string
	memoryLimit                   int64
	restartWindow, readyTimeout   time.Duration
	cycleLifetime                 time.Duration
	report, command               string
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative integer", name, v)
	}
	return n, nil
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", name, v, err)
	}
	return d, nil
}

func readParams(root string) (p params, err error) {
	if p.connections, err = envInt("SCALE_CONNECTIONS", 0); err != nil {
		return p, err
	}
	if p.hosts, err = envInt("SCALE_HOSTS", 50); err != nil {
		return p, err
	}
	if p.hosts == 0 {
		p.hosts = 1
	}
	if p.unrelated, err = envInt("SCALE_UNRELATED_SECRETS", 0); err != nil {
		return p, err
	}
	if p.restartWindow, err = envDuration("SCALE_RESTART_WINDOW", 30*time.Second); err != nil {
		return p, err
	}
	if p.readyTimeout, err = envDuration("SCALE_READY_TIMEOUT", 30*time.Minute); err != nil {
		return p, err
	}
	if p.cycleLifetime, err = envDuration("SCALE_CYCLE_LIFETIME", 5*time.Minute); err != nil {
		return p, err
	}
	if p.cycleLifetime > 0 && p.cycleLifetime < minCycleLifetime {
		return p, fmt.Errorf("SCALE_CYCLE_LIFETIME=%s: want at least %s (or 0 to skip the cycle), so that the renewal time "+
			"stays after the manager's default --min-token-interval of 1m and the lag measures the operator, not that floor",
			p.cycleLifetime, minCycleLifetime)
	}
	p.extraArgs = strings.Fields(os.Getenv("SCALE_MANAGER_ARGS"))
	p.extraEnv = strings.Fields(os.Getenv("SCALE_MANAGER_ENV"))
	if v := os.Getenv("SCALE_MANAGER_MEMORY_LIMIT"); v != "" {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Value() <= 0 {
			return p, fmt.Errorf("SCALE_MANAGER_MEMORY_LIMIT=%q: want a memory size such as 256Mi", v)
		}
		p.memoryLimit = q.Value()
	}
	p.report = os.Getenv("SCALE_REPORT")
	if p.report == "" {
		p.report = filepath.Join(root, "bin", "scale-report.md")
	}
	p.command = os.Getenv("SCALE_COMMAND")
	if p.command == "" {
		p.command = fmt.Sprintf("SCALE_CONNECTIONS=%d go test -v -timeout 0 ./test/scale/", p.connections)
	}
	return p, nil
}

// apiCounts is apiserver_request_total summed by "VERB resource[/subresource]".
type apiCounts map[string]float64

var (
	labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

func scrapeAPI(ctx context.Context, hc *http.Client, host string) (apiCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, b)
	}
	counts := apiCounts{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndex(line, "}")
		if end < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(line[:end], -1) {
			labels[m[1]] = m[2]
		}
		key := labels["resource"]
		if key == "" {
			continue // non-resource URLs such as /metrics, /healthz
		}
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		counts[labels["verb"]+" "+key] += v
	}
	return counts, sc.Err()
}

func (a apiCounts) minus(b apiCounts) apiCounts {
	d := apiCounts{}
	for k, v := range a {
		if x := v - b[k]; x > 0.5 {
			d[k] = x
		}
	}
	return d
}

// managerWrites is writes without the kube-apiserver's own lease renewals (PUT leases about every
// 10 s; the scale manager runs without leader election, so none of them are its).
func (a apiCounts) managerWrites() float64 { return a.writes() - a["PUT leases"] }

func (a apiCounts) writes() (n float64) {
	for k, v := range a {
		switch strings.SplitN(k, " ", 2)[0] {
		case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE":
			n += v
		}
	}
	return n
}

func (a apiCounts) table(title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n| verb | resource | requests |\n|---|---|---:|\n", title)
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		b.WriteString("| – | – | 0 |\n")
	}
	for _, k := range keys {
		parts := strings.SplitN(k, " ", 2)
		fmt.Fprintf(&b, "| %s | %s | %.0f |\n", parts[0], parts[1], a[k])
	}
	return b.String()
}

// parallel runs fn(i) for i in [0,n) on a few goroutines and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	next := make(chan int)
	for w := 0; w < creators; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// connectionName names the i-th MauticConnection.
func connectionName(i int) string { return fmt.Sprintf("conn-%06d", i) }

// serverAddress is the loopback address of the i-th Mautic test server: 127.0.0.2 onwards, then
// 127.0.1.2 and so on.
func serverAddress(i int) string {
	return fmt.Sprintf("127.0.%d.%d", i/250, i%250+2)
}

func tokenRequests(servers []*mautictest.Server) int {
	n := 0
	for _, s := range servers {
		n += s.TokenRequests()
	}
	return n
}

func readyCount(ctx context.Context, c client.Client) (int, int, error) {
	var list authv1alpha1.MauticConnectionList
	if err := c.List(ctx, &list, client.InNamespace(connNamespace)); err != nil {
		return 0, 0, err
	}
	ready := 0
	for i := range list.Items {
		if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, authv1alpha1.ReadyCondition) {
			ready++
		}
	}
	return ready, len(list.Items), nil
}

func TestScale(t *testing.T) {
	if os.Getenv("SCALE_CONNECTIONS") == "" {
		t.Skip("scale test skipped: set SCALE_CONNECTIONS (e.g. 1000) or run `make bench-scale`")
	}
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	p, err := readParams(root)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.connections).To(BeNumerically(">", 0), "SCALE_CONNECTIONS")
	_, err = testenv.AssetsDir()
	g.Expect(err).NotTo(HaveOccurred(), "export KUBEBUILDER_ASSETS (hack/controlplane.sh prints it)")
	ctx := context.Background()
	started := time.Now()

	workDir := t.TempDir()
	if os.Getenv("SCALE_KEEP") != "" {
		workDir, err = os.MkdirTemp("", "mautic-operator-scale-")
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("work directory (manager logs): %s", workDir)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", workDir+string(filepath.Separator), "../../cmd/manager")
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "building the manager: %s", out)
	binary := filepath.Join(workDir, "manager")

	var cgroup *memoryCgroup
	if p.memoryLimit > 0 {
		cgroup, err = newMemoryCgroup(p.memoryLimit)
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = cgroup.remove() }) // after env.Stop, registered below, stopped the managers
	}

	env, err := localenv.Start(localenv.Options{WorkDir: workDir, AdminUser: "scale-admin"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c := env.Client

	// Mautic test servers, each on its own loopback address (127.0.0.2, 127.0.0.3, …) with a
	// certificate naming it, as separate Mautic sites would be: the manager's per-host limits,
	// connection pools and TLS sessions are per address.
	servers := make([]*mautictest.Server, p.hosts)
	apps := make([]mautictest.ClientApp, p.hosts)
	for i := range servers {
		address := serverAddress(i)
		s := mautictest.NewUnstartedServer()
		g.Expect(s.SetCertificateHosts(address)).To(Succeed())
		g.Expect(s.StartTLSOn(address + ":0")).To(Succeed())
		t.Cleanup(s.Close)
		servers[i] = s
		apps[i] = s.NewClient(fmt.Sprintf("scale %d", i), true)
	}

	for _, ns := range []string{connNamespace, unrelatedNamespace} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	g.Expect(parallel(p.hosts, func(i int) error {
		if err := c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: connNamespace, Name: fmt.Sprintf("creds-%03d", i)},
			Data:       map[string][]byte{authv1alpha1.ClientIDKey: []byte(apps[i].ID), authv1alpha1.ClientSecretKey: []byte(apps[i].Secret)},
		}); err != nil {
			return err
		}
		return c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: connNamespace, Name: fmt.Sprintf("ca-%03d", i)},
			Data:       map[string][]byte{authv1alpha1.CACertKey: servers[i].CACertPEM()},
		})
	})).To(Succeed())
	filler := []byte(strings.Repeat("x", unrelatedSize))
	unrelatedStart := time.Now()
	g.Expect(parallel(p.unrelated, func(i int) error {
		return c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: unrelatedNamespace, Name: fmt.Sprintf("unrelated-%06d", i)},
			Data:       map[string][]byte{"data": filler},
		})
	})).To(Succeed())
	unrelatedTook := time.Since(unrelatedStart)

	hc, err := rest.HTTPClientFor(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	scrape := func() apiCounts {
		counts, err := scrapeAPI(ctx, hc, env.Config.Host)
		g.Expect(err).NotTo(HaveOccurred())
		return counts
	}

	// startManager starts the manager binary and returns it with the address of its profiles.
	startManager := func(n int) (*localenv.ManagerProcess, string) {
		metrics, err := localenv.FreeLocalAddress()
		g.Expect(err).NotTo(HaveOccurred())
		probe, err := localenv.FreeLocalAddress()
		g.Expect(err).NotTo(HaveOccurred())
		profiling, err := localenv.FreeLocalAddress()
		g.Expect(err).NotTo(HaveOccurred())
		args := append([]string{
			"--metrics-bind-address=" + metrics,
			"--metrics-secure=false",
			"--health-probe-bind-address=" + probe,
			"--profiling-bind-address=" + profiling,
		}, p.extraArgs...)
		m, err := env.StartManager(localenv.ManagerOptions{
			Binary:  binary,
			Args:    args,
			Env:     p.extraEnv,
			LogPath: filepath.Join(workDir, fmt.Sprintf("manager-%d.log", n)),
		})
		g.Expect(err).NotTo(HaveOccurred())
		if cgroup != nil {
			g.Expect(cgroup.add(m.Pid)).To(Succeed())
		}
		return m, profiling
	}

	// Phase 1: the manager idles with the unrelated Secrets in place, then N connections appear.
	m1, profiling1 := startManager(1)
	time.Sleep(10 * time.Second)
	memIdle := managerMemory(ctx, m1.Pid, profiling1, workDir, "idle")
	t.Logf("manager idle: RSS %s", memIdle)

	before := scrape()
	tokensBefore := tokenRequests(servers)
	cpuBefore := processCPU(m1.Pid)
	createStart := time.Now()
	g.Expect(parallel(p.connections, func(i int) error {
		h := i % p.hosts
		return c.Create(ctx, &authv1alpha1.MauticConnection{
			ObjectMeta: metav1.ObjectMeta{Namespace: connNamespace, Name: connectionName(i)},
			Spec: authv1alpha1.MauticConnectionSpec{
				URL:                  servers[h].URL(),
				Grant:                authv1alpha1.GrantClientCredentials,
				CredentialsSecretRef: authv1alpha1.SecretReference{Name: fmt.Sprintf("creds-%03d", h)},
				TLS:                  &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: fmt.Sprintf("ca-%03d", h)}},
			},
		})
	})).To(Succeed())
	createTook := time.Since(createStart)
	t.Logf("created %d connections in %s", p.connections, createTook.Round(time.Millisecond))

	var readyTook time.Duration
	peakRSS := 0
	deadline := time.Now().Add(p.readyTimeout)
	lastLog := time.Time{}
	for {
		ready, total, err := readyCount(ctx, c)
		g.Expect(err).NotTo(HaveOccurred())
		if r := rssKiB(m1.Pid); r > peakRSS {
			peakRSS = r
		}
		if ready == p.connections && total == p.connections {
			readyTook = time.Since(createStart)
			break
		}
		if time.Since(lastLog) > 15*time.Second {
			t.Logf("%s: %d/%d Ready, %d token requests", time.Since(createStart).Round(time.Second), ready, p.connections, tokenRequests(servers)-tokensBefore)
			lastLog = time.Now()
		}
		select {
		case <-m1.Done():
			t.Fatalf("manager exited: %s\n%s", m1.ExitStatus(), m1.LogTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d/%d connections Ready after %s\n%s", ready, p.connections, p.readyTimeout, m1.LogTail(40))
		}
		time.Sleep(time.Second)
	}
	readyCPU := processCPU(m1.Pid).minus(cpuBefore)
	readyAPI := scrape().minus(before)
	readyTokens := tokenRequests(servers) - tokensBefore
	t.Logf("all %d Ready after %s, %d token requests", p.connections, readyTook.Round(time.Second), readyTokens)
	time.Sleep(10 * time.Second)
	memReady := managerMemory(ctx, m1.Pid, profiling1, workDir, "ready")
	t.Logf("manager 10 s after all Ready: RSS %s", memReady)

	// Phase 2: a steady minute with valid tokens.
	steadyBefore := scrape()
	steadyTokensBefore := tokenRequests(servers)
	time.Sleep(60 * time.Second)
	steadyAPI := scrape().minus(steadyBefore)
	steadyTokens := tokenRequests(servers) - steadyTokensBefore
	memSteady := managerMemory(ctx, m1.Pid, profiling1, workDir, "steady")

	// Phase 3: restart with valid tokens in place.
	g.Expect(m1.Stop()).To(Succeed())
	restartBefore := scrape()
	restartTokensBefore := tokenRequests(servers)
	m2, profiling2 := startManager(2)
	time.Sleep(p.restartWindow)
	restartAPI := scrape().minus(restartBefore)
	restartTokens := tokenRequests(servers) - restartTokensBefore
	memRestart := managerMemory(ctx, m2.Pid, profiling2, workDir, "restart")
	ready, _, err := readyCount(ctx, c)
	g.Expect(err).NotTo(HaveOccurred())

	// Phase 4: a refresh cycle with short-lived tokens, on the restarted manager.
	var cycle cycleResult
	if p.cycleLifetime > 0 {
		harness := cycleHarness{client: c, config: env.Config, servers: servers, connections: p.connections,
			scrape: scrape, logf: t.Logf,
			memory: func(name string) memory { return managerMemory(ctx, m2.Pid, profiling2, workDir, name) }}
		cycle, err = harness.runCycle(ctx, p.cycleLifetime, p.readyTimeout)
		g.Expect(err).NotTo(HaveOccurred(), "refresh cycle\n%s", m2.LogTail(40))
	}
	g.Expect(m2.Stop()).To(Succeed())

	// Report.
	goVersion, _ := exec.CommandContext(ctx, "go", "version").Output()
	var b strings.Builder
	fmt.Fprintf(&b, "# Scale run: %d ClientCredentials connections\n\n", p.connections)
	fmt.Fprintf(&b, "- date: %s\n", started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- machine: %s/%s, %d CPUs (nproc), %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), strings.TrimSpace(string(goVersion)))
	fmt.Fprintf(&b, "- command: `%s`\n", p.command)
	fmt.Fprintf(&b, "- connections %d over %d Mautic test servers (HTTPS, each on its own loopback address from 127.0.0.2), %d unrelated 10 KiB Secrets in another namespace\n",
		p.connections, p.hosts, p.unrelated)
	fmt.Fprintf(&b, "- manager flags: defaults plus metrics/probe/profiling addresses; extra: `%s`; extra environment: `%s`\n",
		strings.Join(p.extraArgs, " "), strings.Join(p.extraEnv, " "))
	fmt.Fprintf(&b, "- control plane: envtest kube-apiserver + etcd on the same machine; the manager runs as system:masters\n\n")
	b.WriteString("| figure | value |\n|---|---:|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("creating the unrelated Secrets took", unrelatedTook.Round(time.Millisecond).String())
	row("creating the connections took", createTook.Round(time.Millisecond).String())
	row("time from the first create until all connections are Ready", readyTook.Round(time.Second).String())
	row("connections Ready per second (overall)", fmt.Sprintf("%.1f", float64(p.connections)/readyTook.Seconds()))
	row("token requests until all Ready", strconv.Itoa(readyTokens))
	row("API writes until all Ready", fmt.Sprintf("%.0f", readyAPI.writes()))
	row("API writes per connection until Ready", fmt.Sprintf("%.2f", readyAPI.writes()/float64(p.connections)))
	row("manager RSS, idle before connections (10 s after start)", memIdle.String())
	row("manager RSS, peak seen while connections became Ready (1 s samples)", mib(peakRSS))
	row("manager RSS, 10 s after all Ready", memReady.String())
	row("manager RSS, after a steady minute", memSteady.String())
	row("steady minute: token requests", strconv.Itoa(steadyTokens))
	row("steady minute: API writes", fmt.Sprintf("%.0f", steadyAPI.writes()))
	row(fmt.Sprintf("restart (%s window): token requests", p.restartWindow), strconv.Itoa(restartTokens))
	row(fmt.Sprintf("restart (%s window): API writes", p.restartWindow), fmt.Sprintf("%.0f", restartAPI.writes()))
	row("restart: manager RSS at the end of the window", memRestart.String())
	row("restart: connections Ready at the end of the window", fmt.Sprintf("%d/%d", ready, p.connections))
	if p.cycleLifetime > 0 {
		b.WriteString(cycle.report())
	}
	if cgroup != nil {
		peak, kills := cgroup.peakKiB(), cgroup.oomKills()
		fmt.Fprintf(&b, "\nMemory cgroup of both managers (whole run), as a container's limit holds it:\n\n"+
			"| figure | value |\n|---|---:|\n| limit | %s |\n| peak charged (anonymous memory and page cache) | %s |\n"+
			"| processes killed for memory | %d |\n", mib(int(p.memoryLimit/1024)), mib(peak), kills)
		if kills != 0 {
			t.Errorf("the kernel killed %d manager processes at the memory limit %s", kills, mib(int(p.memoryLimit/1024)))
		}
	}
	b.WriteString(readyCPU.table(fmt.Sprintf("CPU time from the first create until all Ready (%s on %d CPUs; the harness's creates are in it):",
		readyTook.Round(time.Second), runtime.NumCPU()), readyTook))
	fmt.Fprintf(&b, "\nManager CPU per token until all Ready: %.1f ms.\n", float64(readyCPU["manager"].Milliseconds())/float64(max(readyTokens, 1)))
	b.WriteString(readyAPI.table("API requests (apiserver_request_total delta, all clients incl. the harness's creates and 1/s List) from the first create until all Ready:"))
	b.WriteString(steadyAPI.table("API requests during the steady minute after all Ready (the harness makes none):"))
	b.WriteString(restartAPI.table(fmt.Sprintf("API requests during the restart window (%s from starting the new manager; the harness makes none):", p.restartWindow)))
	report := b.String()
	t.Log("\n" + report)
	g.Expect(os.MkdirAll(filepath.Dir(p.report), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(p.report, []byte(report), 0o644)).To(Succeed())
	t.Logf("report written to %s", p.report)
}
