package scale

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/scheme"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// tokenWatch follows every token Secret of the scale namespace through a watch (so that it costs
// the API server one WATCH, not a List per poll) and records each connection's published tokens,
// in the order they were published.
type tokenWatch struct {
	mu      sync.Mutex
	tokens  map[string][]localenv.PublishedToken // by token Secret name
	expired int                                  // replacements that came after the old token's expiry
}

// startTokenWatch starts an informer on the managed Secrets of the scale namespace and returns once
// it has synced.
func startTokenWatch(ctx context.Context, config *rest.Config, scheme *runtime.Scheme) (*tokenWatch, error) {
	informers, err := cache.New(config, cache.Options{
		Scheme:            scheme,
		DefaultNamespaces: map[string]cache.Config{connNamespace: {}},
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Label: labels.SelectorFromSet(labels.Set{authv1alpha1.ManagedByLabel: authv1alpha1.ManagedByValue}),
		}},
	})
	if err != nil {
		return nil, err
	}
	informer, err := informers.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, err
	}
	w := &tokenWatch{tokens: map[string][]localenv.PublishedToken{}}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, next any) { w.observe(next) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the token Secret watch did not sync")
	}
	return w, nil
}

// observe records a token Secret's token when it differs from the last one seen.
func (w *tokenWatch) observe(object any) {
	secret, ok := object.(*corev1.Secret)
	if !ok {
		return
	}
	// Every scale connection uses the default renewal policy.
	published, err := localenv.ReadPublishedToken(secret, token.RenewalPolicy{})
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.tokens[secret.Name]
	if n := len(seen); n > 0 {
		if !published.IssuedAt.After(seen[n-1].IssuedAt) {
			return
		}
		if published.IssuedAt.After(seen[n-1].ExpiresAt) {
			w.expired++
		}
	}
	w.tokens[secret.Name] = append(seen, published)
}

// issuedSince counts the connections whose newest token was issued after since.
func (w *tokenWatch) issuedSince(since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, seen := range w.tokens {
		if seen[len(seen)-1].IssuedAt.After(since) {
			n++
		}
	}
	return n
}

// scheduledAfter counts, for each connection, the refreshes after its first token issued after
// since, and returns the connections that had at least one and the lag of every such refresh.
func (w *tokenWatch) scheduledAfter(since time.Time) (connections int, lags []time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, seen := range w.tokens {
		first := -1
		for i := range seen {
			if seen[i].IssuedAt.After(since) {
				first = i
				break
			}
		}
		if first < 0 || first == len(seen)-1 {
			continue
		}
		connections++
		for i := first + 1; i < len(seen); i++ {
			lags = append(lags, localenv.RefreshLag(seen[i-1], seen[i]))
		}
	}
	return connections, lags
}

// expiredReplacements returns how many tokens were replaced only after they had expired.
func (w *tokenWatch) expiredReplacements() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.expired
}

// cycleResult is what a refresh cycle with short token lifetimes measured.
type cycleResult struct {
	lifetime       time.Duration
	stormTook      time.Duration // from the first refresh request until every connection had a new token
	stormTokens    int
	cycleTook      time.Duration // from the end of the storm until every connection had refreshed on schedule
	refreshes      int
	cycleTokens    int
	lag            localenv.LagSummary
	expired        int
	api            apiCounts
	memoryAfter    memory
	complete       bool
	readyAtTheEnd  int
	stormRequested int
}

// cycleHarness is what the refresh cycle needs of the scale run.
type cycleHarness struct {
	client      client.Client
	config      *rest.Config
	servers     []*mautictest.Server
	connections int
	// memory reads the manager's memory, keeping its heap profile under the given name.
	memory func(name string) memory
	scrape func() apiCounts
	logf   func(format string, args ...any)
}

// runCycle gives every server's access tokens a short lifetime, requests a refresh of every
// connection (the storm: each then holds a short-lived token), and waits until each has refreshed
// once more on its own schedule: that scheduled refresh is the cycle whose lag and API cost are
// measured. The manager's --min-token-interval must be shorter than the renewal time.
func (h cycleHarness) runCycle(ctx context.Context, lifetime, timeout time.Duration) (cycleResult, error) {
	result := cycleResult{lifetime: lifetime}
	log.SetLogger(logr.Discard()) // the watch's informer logs nothing the report needs
	watch, err := startTokenWatch(ctx, h.config, scheme.New())
	if err != nil {
		return result, err
	}
	for _, server := range h.servers {
		server.SetAccessTokenLifetime(lifetime)
	}

	stormStart := time.Now()
	tokensBefore := tokenRequests(h.servers)
	if err := parallel(h.connections, func(i int) error {
		conn := &authv1alpha1.MauticConnection{}
		conn.Namespace, conn.Name = connNamespace, connectionName(i)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, authv1alpha1.RefreshRequestedAtAnnotation, stormStart.UTC().Format(time.RFC3339Nano))
		return h.client.Patch(ctx, conn, client.RawPatch(types.MergePatchType, []byte(patch)))
	}); err != nil {
		return result, fmt.Errorf("requesting refreshes: %w", err)
	}
	result.stormRequested = h.connections
	deadline := time.Now().Add(timeout)
	for watch.issuedSince(stormStart) < h.connections {
		if time.Now().After(deadline) {
			return result, fmt.Errorf("only %d/%d connections had a new token %s after the refresh requests", watch.issuedSince(stormStart), h.connections, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	result.stormTook = time.Since(stormStart)
	result.stormTokens = tokenRequests(h.servers) - tokensBefore
	h.logf("refresh storm: %d connections had a %s token after %s, %d token requests", h.connections, lifetime, result.stormTook.Round(time.Millisecond), result.stormTokens)

	cycleStart := time.Now()
	apiBefore := h.scrape()
	tokensBefore = tokenRequests(h.servers)
	lastLog := time.Now()
	for {
		refreshed, _ := watch.scheduledAfter(stormStart)
		if refreshed == h.connections {
			result.complete = true
			break
		}
		if time.Now().After(deadline.Add(2 * lifetime)) {
			break
		}
		if time.Since(lastLog) > 30*time.Second {
			h.logf("cycle: %d/%d connections refreshed on schedule after %s", refreshed, h.connections, time.Since(cycleStart).Round(time.Second))
			lastLog = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // the status patches of the last refreshes land
	result.cycleTook = time.Since(cycleStart)
	result.api = h.scrape().minus(apiBefore)
	result.cycleTokens = tokenRequests(h.servers) - tokensBefore
	_, lags := watch.scheduledAfter(stormStart)
	result.refreshes = len(lags)
	result.lag = localenv.SummariseLags(lags)
	result.expired = watch.expiredReplacements()
	result.memoryAfter = h.memory("cycle")
	ready, _, err := readyCount(ctx, h.client)
	result.readyAtTheEnd = ready
	return result, err
}

// report is the cycle's section of the markdown report.
func (c cycleResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nRefresh cycle with %s access tokens (renewed with a third of the lifetime left), on the restarted manager:\n\n", c.lifetime)
	b.WriteString("| figure | value |\n|---|---:|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("refresh storm: connections asked to refresh at once (annotation)", strconv.Itoa(c.stormRequested))
	row("refresh storm: time until every connection had a new token", c.stormTook.Round(time.Millisecond).String())
	row("refresh storm: token requests", strconv.Itoa(c.stormTokens))
	row("scheduled cycle: complete (every connection refreshed on its own)", strconv.FormatBool(c.complete))
	row("scheduled cycle: duration (end of storm until the last scheduled refresh, +5 s)", c.cycleTook.Round(time.Second).String())
	row("scheduled cycle: refreshes", strconv.Itoa(c.refreshes))
	row("scheduled cycle: token requests", strconv.Itoa(c.cycleTokens))
	row("scheduled cycle: refresh lag behind renewAt p50 / p99 / max", fmt.Sprintf("%s / %s / %s",
		c.lag.P50.Round(time.Millisecond), c.lag.P99.Round(time.Millisecond), c.lag.Max.Round(time.Millisecond)))
	row("tokens replaced only after they had expired (whole run)", strconv.Itoa(c.expired))
	row("token requests per refresh", perRefresh(float64(c.cycleTokens), c.refreshes))
	row("API writes per refresh (the harness writes nothing in the cycle; the kube-apiserver's own lease renewals left out)", perRefresh(c.api.managerWrites(), c.refreshes))
	for _, key := range []string{"APPLY secrets", "PATCH mauticconnections/status", "GET secrets", "POST events"} {
		row(key+" per refresh", perRefresh(c.api[key], c.refreshes))
	}
	row("manager RSS after the cycle", c.memoryAfter.String())
	row("connections Ready after the cycle", strconv.Itoa(c.readyAtTheEnd))
	b.WriteString(c.api.table("API requests during the scheduled cycle (the harness's only request is its token Secret WATCH):"))
	return b.String()
}

// perRefresh formats n divided by refreshes.
func perRefresh(n float64, refreshes int) string {
	if refreshes == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", n/float64(refreshes))
}
