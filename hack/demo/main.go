// Command demo shows the operator's main job end to end on a machine with no cluster: it starts a
// local control plane (envtest), a Mautic-compatible test server and the compiled manager binary,
// applies config/samples/ as a user would, waits for the connection to become Ready and prints what
// a user would look at. It never prints a token, a client secret or any other secret value.
//
// Run it with `make demo`, which builds bin/manager and the control plane binaries first.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/testenv"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// namespace is where the samples are applied, as `kubectl apply` does without a namespace.
	namespace = "default"
	// adminUser is the system:masters user of the kubeconfig the manager runs with.
	adminUser = "demo-admin"
	// clientName is the display name of the API client registered in the Mautic test server.
	clientName = "mautic-operator demo"
	// accessTokenLifetime is short so that the planned renewal time is visible in the output.
	accessTokenLifetime = 2 * time.Minute
	// readyTimeout bounds the wait for Ready=True.
	readyTimeout = 60 * time.Second
	// managerStopTimeout is how long the manager gets to stop after SIGTERM before it is killed.
	managerStopTimeout = 10 * time.Second
	// logTailLines is how many lines of the manager's log are shown when something fails.
	logTailLines = 30
	// noneText is how kubectl renders a missing value.
	noneText = "<none>"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case interrupted:
		fmt.Fprintln(os.Stderr, "\ndemo interrupted; everything it started has been stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nDemo finished: the operator obtained a token, published it and proved it works.")
}

// demo holds what the steps share.
type demo struct {
	env     *localenv.Env
	manager *localenv.ManagerProcess
	samples *localenv.AppliedSamples
}

// run performs the demo's steps in order; the deferred cleanup stops everything it started, also
// on error or Ctrl-C.
func run(ctx context.Context) error {
	// controller-runtime logs through this logger; the demo reports errors itself.
	ctrllog.SetLogger(logr.Discard())

	assets, err := testenv.AssetsDir()
	if err != nil {
		return err
	}
	workDir, err := os.MkdirTemp("", "mautic-operator-demo-")
	if err != nil {
		return fmt.Errorf("creating a work directory: %w", err)
	}
	d := &demo{}

	section("Starting a local control plane (envtest: kube-apiserver and etcd)")
	fmt.Printf("    binaries:   %s\n", assets)
	d.env, err = localenv.Start(localenv.Options{
		WorkDir:             workDir,
		AdminUser:           adminUser,
		ClientName:          clientName,
		AccessTokenLifetime: accessTokenLifetime,
	})
	if err != nil {
		return err
	}
	defer d.cleanUp()
	d.showControlPlane()
	d.showMautic()

	if err := d.startManager(); err != nil {
		return err
	}
	if err := d.applySamples(ctx); err != nil {
		return d.withManagerLog(ctx, err)
	}
	conn, err := d.waitForReady(ctx)
	if err != nil {
		return d.withManagerLog(ctx, err)
	}
	return d.show(ctx, conn)
}

// section prints a step's heading.
func section(title string) {
	fmt.Printf("\n==> %s\n", title)
}

// showControlPlane prints where the control plane listens and how to reach it.
func (d *demo) showControlPlane() {
	fmt.Printf("    API server: %s\n", d.env.Config.Host)
	fmt.Printf("    CRD:        %s installed\n", testenv.CRDName)
	fmt.Printf("    kubeconfig: %s (user %s, group system:masters)\n", d.env.KubeconfigPath, d.env.AdminUser)
}

// showMautic prints the Mautic test server and the API client registered in it, as an admin would
// register one in Mautic's Settings > API Credentials.
func (d *demo) showMautic() {
	section("Starting the Mautic test server")
	fmt.Printf("    Mautic:     %s (HTTPS, self-signed certificate; Mautic-Version %s)\n",
		d.env.Mautic.URL(), mautictest.DefaultMauticVersion)
	fmt.Printf("    API client: %q, allowed to use the client-credentials grant\n", d.env.MauticClient.Name)
	fmt.Printf("    tokens:     access tokens live %s\n", accessTokenLifetime)
}

// startManager starts bin/manager against the local control plane, its output going to a log file.
func (d *demo) startManager() error {
	section("Starting the manager (bin/manager)")
	manager, err := d.env.StartManager(localenv.ManagerOptions{
		Args:        []string{"--health-probe-bind-address=0", "--metrics-bind-address=0"},
		StopTimeout: managerStopTimeout,
	})
	if err != nil {
		return err
	}
	d.manager = manager
	fmt.Printf("    pid:        %d\n", manager.Pid)
	fmt.Printf("    args:       %s\n", strings.Join(manager.Args, " "))
	fmt.Printf("    log:        %s\n", manager.LogPath)
	return nil
}

// cleanUp stops the manager, the Mautic test server and the control plane, saying so.
func (d *demo) cleanUp() {
	section("Cleaning up")
	if d.manager != nil {
		if err := d.manager.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "    %v\n", err)
		}
		fmt.Printf("    manager stopped (%s); its log stays at %s\n", d.manager.ExitStatus(), d.manager.LogPath)
	}
	err := d.env.Stop()
	fmt.Println("    Mautic test server stopped")
	if err != nil {
		fmt.Fprintf(os.Stderr, "    %v\n", err)
		return
	}
	fmt.Println("    control plane stopped")
}

// withManagerLog adds the manager's state and the tail of its log to a failure, unless the demo
// was interrupted.
func (d *demo) withManagerLog(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	state := "was still running"
	select {
	case <-d.manager.Done():
		state = fmt.Sprintf("had exited (%s)", d.manager.ExitStatus())
	default:
	}
	return fmt.Errorf("%w\n\nthe manager %s when the demo failed; last lines of %s:\n%s", err, state, d.manager.LogPath, d.manager.LogTail(logTailLines))
}

// applySamples applies every object in config/samples/ to the default namespace, after pointing
// the MauticConnection at the test server and filling the credentials Secret with the test client.
// It prints each change, never a value of the Secret.
func (d *demo) applySamples(ctx context.Context) error {
	section("Applying config/samples/ to namespace " + namespace)
	samples, err := d.env.ApplySamples(ctx, filepath.Join(d.env.Root, "config", "samples"), namespace)
	if samples != nil {
		fmt.Println("    rewritten for the demo (everything else is applied as written):")
		for _, rewrite := range samples.Rewrites {
			fmt.Printf("      %s\n", rewrite)
		}
		for _, applied := range samples.Applied {
			if applied.Kind == "Secret" && applied.Name == samples.CASecret.Name {
				fmt.Printf("    created %s (added by the demo: %s is the test server's certificate)\n", applied, authv1alpha1.CACertKey)
				continue
			}
			fmt.Printf("    created %s\n", applied)
		}
	}
	d.samples = samples
	return err
}

// waitForReady waits for the sample connection's Ready condition to be True, failing early when
// the connection is Stalled or the manager exits.
func (d *demo) waitForReady(ctx context.Context) (*authv1alpha1.MauticConnection, error) {
	name := d.samples.Connection.Name
	section(fmt.Sprintf("Waiting for MauticConnection %s to be Ready (up to %s)", name, readyTimeout))
	start := time.Now()
	conn, err := d.env.WaitReady(ctx, namespace, name, readyTimeout)
	if err != nil {
		return nil, err
	}
	fmt.Printf("    Ready=True after %s\n", time.Since(start).Round(100*time.Millisecond))
	return conn, nil
}

// show prints what a user would look at once the connection is Ready.
func (d *demo) show(ctx context.Context, conn *authv1alpha1.MauticConnection) error {
	if err := d.showTable(ctx); err != nil {
		return err
	}
	showConditions(conn)
	showStatus(conn)
	secret, err := d.showTokenSecret(ctx, conn)
	if err != nil {
		return err
	}
	if err := d.showTokenWorks(ctx, secret); err != nil {
		return err
	}
	if err := d.showEvents(ctx, conn); err != nil {
		return err
	}
	d.showCounters()
	return nil
}

// showTable prints `kubectl get mauticconnections`, from the Table the API server renders with the
// CRD's printer columns.
func (d *demo) showTable(ctx context.Context) error {
	section("kubectl get mauticconnections")
	table, err := d.getTable(ctx, "/apis/"+authv1alpha1.GroupVersion.String()+"/namespaces/"+namespace+"/mauticconnections")
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	var shown []int
	var headers []string
	for i, column := range table.ColumnDefinitions {
		if column.Priority == 0 { // kubectl shows higher priorities only with -o wide
			shown = append(shown, i)
			headers = append(headers, strings.ToUpper(column.Name))
		}
	}
	fmt.Fprintln(w, strings.Join(headers, "\t"))
	for _, row := range table.Rows {
		var cells []string
		for _, i := range shown {
			cells = append(cells, cellText(row.Cells, i))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}

// getTable fetches path from the API server in the meta.k8s.io Table format, as kubectl get does.
func (d *demo) getTable(ctx context.Context, path string) (*metav1.Table, error) {
	httpClient, err := rest.HTTPClientFor(d.env.Config)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(d.env.Config.Host, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("getting the table: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("getting the table: HTTP %d: %s", resp.StatusCode, body)
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(body, table); err != nil {
		return nil, fmt.Errorf("decoding the table: %w", err)
	}
	return table, nil
}

// cellText renders one table cell as kubectl does: missing values as <none>.
func cellText(cells []any, i int) string {
	if i >= len(cells) || cells[i] == nil || cells[i] == "" {
		return noneText
	}
	return fmt.Sprint(cells[i])
}

// showConditions prints the connection's conditions.
func showConditions(conn *authv1alpha1.MauticConnection) {
	section("Conditions")
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "TYPE\tSTATUS\tREASON\tMESSAGE")
	for _, c := range conn.Status.Conditions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	_ = w.Flush()
}

// showStatus prints the status fields about the token's lifetime and the Mautic site.
func showStatus(conn *authv1alpha1.MauticConnection) {
	section("Status")
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(w, "expiresAt:\t%s\n", timeText(conn.Status.ExpiresAt))
	fmt.Fprintf(w, "renewAt:\t%s\n", timeText(conn.Status.RenewAt))
	fmt.Fprintf(w, "lastRefreshTime:\t%s\n", timeText(conn.Status.LastRefreshTime))
	fmt.Fprintf(w, "mauticVersion:\t%s\n", valueOrNone(conn.Status.MauticVersion))
	fmt.Fprintf(w, "tokenSecretName:\t%s\n", valueOrNone(conn.Status.TokenSecretName))
	fmt.Fprintf(w, "observedGeneration:\t%d (metadata.generation %d)\n", conn.Status.ObservedGeneration, conn.Generation)
	_ = w.Flush()
}

// timeText renders a status time in RFC 3339 with how far it is from now.
func timeText(t *metav1.Time) string {
	if t == nil {
		return noneText
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), relative(t.Time))
}

// relative says "in 1m19s", "now" or "3s ago".
func relative(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	switch {
	case d == 0:
		return "now"
	case d > 0:
		return "in " + d.String()
	default:
		return (-d).String() + " ago"
	}
}

// valueOrNone renders an empty string as <none>.
func valueOrNone(s string) string {
	if s == "" {
		return noneText
	}
	return s
}

// showTokenSecret prints the token Secret's name, owner, labels and keys with their sizes, never
// the values, and returns it.
func (d *demo) showTokenSecret(ctx context.Context, conn *authv1alpha1.MauticConnection) (*corev1.Secret, error) {
	name := conn.Status.TokenSecretName
	if name == "" {
		name = conn.TokenSecretName()
	}
	section("Token Secret " + namespace + "/" + name + " (what workloads mount; values not shown)")
	secret := &corev1.Secret{}
	if err := d.env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret); err != nil {
		return nil, fmt.Errorf("reading the token Secret: %w", err)
	}
	if owner := metav1.GetControllerOf(secret); owner != nil {
		fmt.Printf("    owner:  %s %s (controller)\n", owner.Kind, owner.Name)
	}
	fmt.Println("    labels:")
	for _, key := range sortedKeys(secret.Labels) {
		fmt.Printf("      %s: %s\n", key, secret.Labels[key])
	}
	fmt.Println("    data:")
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	for _, key := range sortedKeys(secret.Data) {
		fmt.Fprintf(w, "      %s:\t%d bytes\n", key, len(secret.Data[key]))
	}
	_ = w.Flush()
	return secret, nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}

// showTokenWorks calls Mautic's /api/users/self with the Secret's authorization value, as a
// workload would, and prints the answer's status and Mautic-Version header.
func (d *demo) showTokenWorks(ctx context.Context, secret *corev1.Secret) error {
	section("Using the token: GET /api/users/self with the Secret's authorization key")
	authorization := secret.Data[authv1alpha1.AuthorizationKey]
	if len(authorization) == 0 {
		return fmt.Errorf("the token Secret has no %s key", authv1alpha1.AuthorizationKey)
	}
	httpClient, err := d.env.MauticHTTPClient()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.env.Mautic.URL()+"/api/users/self", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", string(authorization))
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling Mautic with the token: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	fmt.Printf("    HTTP %s, Mautic-Version: %s\n", resp.Status, valueOrNone(resp.Header.Get("Mautic-Version")))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mautic refused the published token: HTTP %s", resp.Status)
	}
	return nil
}

// showEvents prints the events recorded on the connection (events.k8s.io/v1). Events are sent
// asynchronously, so it waits a few seconds for the first one.
func (d *demo) showEvents(ctx context.Context, conn *authv1alpha1.MauticConnection) error {
	section("Events on MauticConnection " + conn.Name)
	var events []eventsv1.Event
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		list := &eventsv1.EventList{}
		if err := d.env.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		events = events[:0]
		for _, event := range list.Items {
			if event.Regarding.Kind == authv1alpha1.Kind && event.Regarding.Name == conn.Name {
				events = append(events, event)
			}
		}
		return len(events) > 0, nil
	})
	if err != nil && !wait.Interrupted(err) {
		return fmt.Errorf("listing events: %w", err)
	}
	if len(events) == 0 {
		fmt.Println("    (no events)")
		return nil
	}
	slices.SortFunc(events, func(a, b eventsv1.Event) int { return eventTime(a).Compare(eventTime(b)) })
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "AGE\tTYPE\tREASON\tACTION\tREPORTER\tNOTE")
	for _, event := range events {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", duration.HumanDuration(time.Since(eventTime(event))),
			event.Type, event.Reason, event.Action, event.ReportingController, event.Note)
	}
	return w.Flush()
}

// eventTime returns when an event was last seen.
func eventTime(event eventsv1.Event) time.Time {
	switch {
	case event.Series != nil:
		return event.Series.LastObservedTime.Time
	case !event.EventTime.IsZero():
		return event.EventTime.Time
	default:
		return event.CreationTimestamp.Time
	}
}

// showCounters prints the test server's request counters: one token request is expected.
func (d *demo) showCounters() {
	section("Mautic test server counters")
	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(w, "token requests:\t%d\n", d.env.Mautic.TokenRequests())
	fmt.Fprintf(w, "  grant client_credentials:\t%d\n", d.env.Mautic.TokenRequestsByGrant("client_credentials"))
	fmt.Fprintf(w, "  from the demo's client:\t%d\n", d.env.Mautic.TokenRequestsByClient(d.env.MauticClient.ID))
	fmt.Fprintf(w, "access tokens issued:\t%d\n", d.env.Mautic.IssuedAccessTokens())
	fmt.Fprintf(w, "API requests:\t%d (the operator's spec.verify check and the demo's call above)\n", d.env.Mautic.APIRequests())
	_ = w.Flush()
}
