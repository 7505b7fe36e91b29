// Command demo shows the operator's main job end to end on a machine with no cluster: it starts a
// local control plane (envtest), a Mautic-compatible test server and the compiled manager binary,
// applies config/samples/ as a user would, waits for the connection to become Ready and prints what
// a user would look at. It never prints a token, a client secret or any other secret value.
//
// Run it with `make demo`, which builds bin/manager and the control plane binaries first.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
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
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

const (
	// namespace is where the samples are applied, as `kubectl apply` does without a namespace.
	namespace = "default"
	// caSecretName is the Secret the demo creates with the test server's CA, for spec.tls.caSecretRef.
	caSecretName = "mautic-ca"
	// accessTokenLifetime is short so that the planned renewal time is visible in the output.
	accessTokenLifetime = 2 * time.Minute
	// readyTimeout bounds the wait for Ready=True.
	readyTimeout = 60 * time.Second
	// managerStopTimeout is how long the manager gets to stop after SIGTERM before it is killed.
	managerStopTimeout = 10 * time.Second
	// logTailLines is how many lines of the manager's log are shown when something fails.
	logTailLines = 30
)

// scheme knows the built-in kinds and MauticConnection.
var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
}

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

// demo holds what the steps share; each start step registers its own cleanup.
type demo struct {
	root      string
	workDir   string
	cfg       *rest.Config
	kube      client.Client
	mautic    *mautictest.Server
	mauticApp mautictest.ClientApp
	manager   *managerProcess
	samples   sampleNames

	cleanupAnnounced bool
}

// sampleNames names the objects the samples create, as found while rewriting them.
type sampleNames struct {
	connectionName  string
	credentialsName string
}

// run performs the demo's steps in order; deferred cleanups stop everything it started, also on
// error or Ctrl-C.
func run(ctx context.Context) error {
	// controller-runtime logs through this logger; the demo reports errors itself.
	ctrllog.SetLogger(logr.Discard())

	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make demo`, which builds the local control plane and the manager first")
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	workDir, err := os.MkdirTemp("", "mautic-operator-demo-")
	if err != nil {
		return fmt.Errorf("creating a work directory: %w", err)
	}
	d := &demo{root: root, workDir: workDir}

	stopControlPlane, err := d.startControlPlane()
	if err != nil {
		return err
	}
	defer stopControlPlane()

	d.startMautic()
	defer d.stopMautic()

	if err := d.startManager(); err != nil {
		return err
	}
	defer d.stopManager()

	if err := d.applySamples(ctx); err != nil {
		return d.withManagerLog(ctx, err)
	}
	conn, err := d.waitForReady(ctx)
	if err != nil {
		return d.withManagerLog(ctx, err)
	}
	return d.show(ctx, conn)
}

// repoRoot returns the directory holding go.mod, searching up from the working directory, so that
// the demo finds config/ and bin/ wherever in the repository it is started.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory: run `make demo` in the repository")
		}
		dir = parent
	}
}

// section prints a step's heading.
func section(title string) {
	fmt.Printf("\n==> %s\n", title)
}

// announceCleanup prints the cleanup heading once, before the first thing is stopped.
func (d *demo) announceCleanup() {
	if !d.cleanupAnnounced {
		d.cleanupAnnounced = true
		section("Cleaning up")
	}
}

// startControlPlane starts kube-apiserver and etcd with the MauticConnection CRD installed, and
// returns the function that stops them.
func (d *demo) startControlPlane() (func(), error) {
	section("Starting a local control plane (envtest: kube-apiserver and etcd)")
	fmt.Printf("    binaries:   %s\n", os.Getenv("KUBEBUILDER_ASSETS"))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(d.root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the local control plane: %w", err)
	}
	stop := func() {
		d.announceCleanup()
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "    stopping the local control plane: %v\n", err)
			return
		}
		fmt.Println("    control plane stopped")
	}
	kube, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		stop()
		return nil, fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	d.cfg, d.kube = cfg, kube
	fmt.Printf("    API server: %s\n", cfg.Host)
	fmt.Printf("    CRD:        %s installed\n", "mauticconnections.auth.mautic-operator.dev")

	if err := d.writeKubeconfig(env); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// writeKubeconfig writes a kubeconfig for an admin user into the work directory, for the manager.
func (d *demo) writeKubeconfig(env *envtest.Environment) error {
	admin, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the demo-admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the kubeconfig: %w", err)
	}
	if err := os.WriteFile(d.kubeconfigPath(), kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	fmt.Printf("    kubeconfig: %s (user demo-admin, group system:masters)\n", d.kubeconfigPath())
	return nil
}

// kubeconfigPath is where the admin kubeconfig is written.
func (d *demo) kubeconfigPath() string { return filepath.Join(d.workDir, "kubeconfig") }

// managerLogPath is where the manager's output goes.
func (d *demo) managerLogPath() string { return filepath.Join(d.workDir, "manager.log") }

// startMautic starts the Mautic-compatible test server over HTTPS and registers an API client that
// may use the client-credentials grant, as an admin would in Mautic's Settings > API Credentials.
func (d *demo) startMautic() {
	section("Starting the Mautic test server")
	d.mautic = mautictest.NewTLSServer()
	d.mautic.SetAccessTokenLifetime(accessTokenLifetime)
	d.mauticApp = d.mautic.NewClient("mautic-operator demo", true)
	fmt.Printf("    Mautic:     %s (HTTPS, self-signed certificate; Mautic-Version %s)\n",
		d.mautic.URL(), mautictest.DefaultMauticVersion)
	fmt.Printf("    API client: %q, allowed to use the client-credentials grant\n", d.mauticApp.Name)
	fmt.Printf("    tokens:     access tokens live %s\n", accessTokenLifetime)
}

// stopMautic stops the test server.
func (d *demo) stopMautic() {
	d.announceCleanup()
	d.mautic.Close()
	fmt.Println("    Mautic test server stopped")
}

// managerProcess is the manager binary running as a child process.
type managerProcess struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // the process's exit error, set before exited is closed
}

// startManager starts bin/manager against the local control plane, its output going to a log file.
func (d *demo) startManager() error {
	section("Starting the manager (bin/manager)")
	binary := filepath.Join(d.root, "bin", "manager")
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("%s not found: run `make demo`, which builds it", binary)
	}
	logFile, err := os.Create(d.managerLogPath())
	if err != nil {
		return fmt.Errorf("creating the manager log: %w", err)
	}
	cmd := exec.Command(binary,
		"--kubeconfig", d.kubeconfigPath(),
		"--health-probe-bind-address=0",
		"--metrics-bind-address=0",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches the demo only, which then stops the manager with a
	// single SIGTERM (a second signal would make the manager exit at once).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting %s: %w", binary, err)
	}
	m := &managerProcess{cmd: cmd, log: logFile, exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	d.manager = m
	fmt.Printf("    pid:        %d\n", cmd.Process.Pid)
	fmt.Printf("    args:       %s\n", strings.Join(cmd.Args[1:], " "))
	fmt.Printf("    log:        %s\n", d.managerLogPath())
	return nil
}

// stopManager sends SIGTERM to the manager and waits for it to exit, killing it after
// managerStopTimeout.
func (d *demo) stopManager() {
	d.announceCleanup()
	m := d.manager
	select {
	case <-m.exited:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(managerStopTimeout):
			fmt.Fprintf(os.Stderr, "    manager did not stop within %s; killing it\n", managerStopTimeout)
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
	_ = m.log.Close()
	_ = os.Remove(d.kubeconfigPath())
	fmt.Printf("    manager stopped (%s); its log stays at %s\n", exitText(m.err), d.managerLogPath())
}

// exitText describes how the manager process ended.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// withManagerLog adds the manager's state and the tail of its log to a failure, unless the demo
// was interrupted.
func (d *demo) withManagerLog(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	state := "was still running"
	select {
	case <-d.manager.exited:
		state = fmt.Sprintf("had exited (%s)", exitText(d.manager.err))
	default:
	}
	return fmt.Errorf("%w\n\nthe manager %s when the demo failed; last lines of %s:\n%s", err, state, d.managerLogPath(), tail(d.managerLogPath(), logTailLines))
}

// tail returns the last n lines of the file at path, indented.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "    (cannot read: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// applySamples creates every object in config/samples/ in the default namespace, after pointing the
// MauticConnection at the test server and filling the credentials Secret with the test client.
func (d *demo) applySamples(ctx context.Context) error {
	section("Applying config/samples/ to namespace " + namespace)
	objects, err := readSamples(filepath.Join(d.root, "config", "samples"))
	if err != nil {
		return err
	}
	if err := d.rewriteSamples(objects); err != nil {
		return err
	}
	if err := d.createCASecret(ctx); err != nil {
		return err
	}
	for _, obj := range objects {
		obj.SetNamespace(namespace)
		if err := d.kube.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		fmt.Printf("    created %s %s/%s\n", obj.GetKind(), namespace, obj.GetName())
	}
	return nil
}

// readSamples decodes every YAML document of every file in dir except kustomization.yaml, with
// Secrets first so that the connection finds its Secrets on its first reconcile.
func readSamples(dir string) ([]*unstructured.Unstructured, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objects []*unstructured.Unstructured
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		docs, err := readYAMLDocuments(path)
		if err != nil {
			return nil, err
		}
		objects = append(objects, docs...)
	}
	if len(objects) == 0 {
		return nil, fmt.Errorf("no objects found in %s", dir)
	}
	slices.SortStableFunc(objects, func(a, b *unstructured.Unstructured) int {
		return applyOrder(a) - applyOrder(b)
	})
	return objects, nil
}

// applyOrder ranks Secrets before everything else.
func applyOrder(obj *unstructured.Unstructured) int {
	if obj.GetKind() == "Secret" {
		return 0
	}
	return 1
}

// readYAMLDocuments decodes the "---"-separated documents of a file, skipping empty ones.
func readYAMLDocuments(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objects []*unstructured.Unstructured
	for i, doc := range splitYAMLDocuments(data) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", path, i+1, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

// splitYAMLDocuments splits a YAML stream on lines that are exactly "---".
func splitYAMLDocuments(data []byte) [][]byte {
	var docs [][]byte
	var current bytes.Buffer
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		if strings.TrimSpace(scanner.Text()) == "---" {
			docs = append(docs, bytes.Clone(current.Bytes()))
			current.Reset()
			continue
		}
		current.Write(scanner.Bytes())
		current.WriteByte('\n')
	}
	return append(docs, current.Bytes())
}

// rewriteSamples points the sample MauticConnection at the test server and trusts its CA, and
// fills the credentials Secret it names with the test server's client. It prints each change,
// never a value of the Secret.
func (d *demo) rewriteSamples(objects []*unstructured.Unstructured) error {
	fmt.Println("    rewritten for the demo (everything else is applied as written):")
	var conn *unstructured.Unstructured
	for _, obj := range objects {
		if obj.GetKind() == "MauticConnection" {
			if conn != nil {
				return errors.New("config/samples/ holds more than one MauticConnection; the demo expects one")
			}
			conn = obj
		}
	}
	if conn == nil {
		return errors.New("config/samples/ holds no MauticConnection")
	}
	oldURL, _, _ := unstructured.NestedString(conn.Object, "spec", "url")
	if err := unstructured.SetNestedField(conn.Object, d.mautic.URL(), "spec", "url"); err != nil {
		return err
	}
	if err := unstructured.SetNestedField(conn.Object, caSecretName, "spec", "tls", "caSecretRef", "name"); err != nil {
		return err
	}
	fmt.Printf("      MauticConnection %s: spec.url %s -> %s\n", conn.GetName(), oldURL, d.mautic.URL())
	fmt.Printf("      MauticConnection %s: added spec.tls.caSecretRef.name: %s (the test server's self-signed CA)\n", conn.GetName(), caSecretName)

	credentialsName, _, _ := unstructured.NestedString(conn.Object, "spec", "credentialsSecretRef", "name")
	d.samples = sampleNames{connectionName: conn.GetName(), credentialsName: credentialsName}
	for _, obj := range objects {
		if obj.GetKind() != "Secret" || obj.GetName() != credentialsName {
			continue
		}
		unstructured.RemoveNestedField(obj.Object, "data", authv1alpha1.ClientIDKey)
		unstructured.RemoveNestedField(obj.Object, "data", authv1alpha1.ClientSecretKey)
		if err := unstructured.SetNestedField(obj.Object, d.mauticApp.ID, "stringData", authv1alpha1.ClientIDKey); err != nil {
			return err
		}
		if err := unstructured.SetNestedField(obj.Object, d.mauticApp.Secret, "stringData", authv1alpha1.ClientSecretKey); err != nil {
			return err
		}
		fmt.Printf("      Secret %s: %s and %s replaced by the test server's client %q (values not shown)\n",
			obj.GetName(), authv1alpha1.ClientIDKey, authv1alpha1.ClientSecretKey, d.mauticApp.Name)
		return nil
	}
	return fmt.Errorf("config/samples/ holds no Secret %q, the MauticConnection's credentialsSecretRef", credentialsName)
}

// createCASecret creates the Secret holding the test server's CA certificate in its ca.crt key.
func (d *demo) createCASecret(ctx context.Context) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: caSecretName, Namespace: namespace},
		Data:       map[string][]byte{authv1alpha1.CACertKey: d.mautic.CACertPEM()},
	}
	if err := d.kube.Create(ctx, secret); err != nil {
		return fmt.Errorf("creating Secret %s: %w", caSecretName, err)
	}
	fmt.Printf("    created Secret %s/%s (added by the demo: %s is the test server's certificate)\n", namespace, caSecretName, authv1alpha1.CACertKey)
	return nil
}

// waitForReady polls the connection until its Ready condition is True, failing early when the
// connection is Stalled or the manager exits.
func (d *demo) waitForReady(ctx context.Context) (*authv1alpha1.MauticConnection, error) {
	section(fmt.Sprintf("Waiting for MauticConnection %s to be Ready (up to %s)", d.samples.connectionName, readyTimeout))
	start := time.Now()
	conn := &authv1alpha1.MauticConnection{}
	key := client.ObjectKey{Namespace: namespace, Name: d.samples.connectionName}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, readyTimeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-d.manager.exited:
			return false, errors.New("the manager exited")
		default:
		}
		if err := d.kube.Get(ctx, key, conn); err != nil {
			return false, err
		}
		if stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition); stalled != nil && stalled.Status == metav1.ConditionTrue {
			return false, fmt.Errorf("the connection is Stalled: %s: %s", stalled.Reason, stalled.Message)
		}
		return apimeta.IsStatusConditionTrue(conn.Status.Conditions, authv1alpha1.ReadyCondition), nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for Ready=True: %w\n\nconditions:\n%s", err, conditionsText(conn))
	}
	fmt.Printf("    Ready=True after %s\n", time.Since(start).Round(100*time.Millisecond))
	return conn, nil
}

// conditionsText renders the connection's conditions, one a line.
func conditionsText(conn *authv1alpha1.MauticConnection) string {
	if len(conn.Status.Conditions) == 0 {
		return "    (none yet)"
	}
	var lines []string
	for _, c := range conn.Status.Conditions {
		lines = append(lines, fmt.Sprintf("    %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(lines, "\n")
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
	httpClient, err := rest.HTTPClientFor(d.cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(d.cfg.Host, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("getting the table: %w", err)
	}
	defer resp.Body.Close()
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
		return "<none>"
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
		return "<none>"
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
		return "<none>"
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
	if err := d.kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret); err != nil {
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
	httpClient, err := d.mauticHTTPClient()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.mautic.URL()+"/api/users/self", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", string(authorization))
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling Mautic with the token: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	fmt.Printf("    HTTP %s, Mautic-Version: %s\n", resp.Status, valueOrNone(resp.Header.Get("Mautic-Version")))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mautic refused the published token: HTTP %s", resp.Status)
	}
	return nil
}

// mauticHTTPClient returns an HTTP client that trusts the test server's certificate.
func (d *demo) mauticHTTPClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(d.mautic.CACertPEM()) {
		return nil, errors.New("the test server's certificate is not PEM")
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

// showEvents prints the events recorded on the connection (events.k8s.io/v1). Events are sent
// asynchronously, so it waits a few seconds for the first one.
func (d *demo) showEvents(ctx context.Context, conn *authv1alpha1.MauticConnection) error {
	section("Events on MauticConnection " + conn.Name)
	var events []eventsv1.Event
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		list := &eventsv1.EventList{}
		if err := d.kube.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		events = events[:0]
		for _, event := range list.Items {
			if event.Regarding.Kind == "MauticConnection" && event.Regarding.Name == conn.Name {
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
	fmt.Fprintf(w, "token requests:\t%d\n", d.mautic.TokenRequests())
	fmt.Fprintf(w, "  grant client_credentials:\t%d\n", d.mautic.TokenRequestsByGrant("client_credentials"))
	fmt.Fprintf(w, "  from the demo's client:\t%d\n", d.mautic.TokenRequestsByClient(d.mauticApp.ID))
	fmt.Fprintf(w, "access tokens issued:\t%d\n", d.mautic.IssuedAccessTokens())
	fmt.Fprintf(w, "API requests:\t%d (the operator's spec.verify check and the demo's call above)\n", d.mautic.APIRequests())
	_ = w.Flush()
}
