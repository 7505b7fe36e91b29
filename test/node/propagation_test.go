package node

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// propagationSamples is how many probe Secret updates are timed.
const propagationSamples = 6

// measurePropagation times how long the kubelet takes to bring a Secret update into a running
// pod's volume: it updates the probe Secret and waits for the workload to read the new content,
// several times at different moments of the kubelet's sync period; and it takes the same delay
// for every token the operator published, from the token's issued-at annotation to the moment
// the workload first read it. The figures go to the test log and the report (MAUTIC_NODE_REPORT).
func (b *bed) measurePropagation(t *testing.T, s *scenario) {
	t.Helper()
	probe := b.timeProbeUpdates(t, s.apps, s.workloads[0], propagationSamples)
	var tokens []time.Duration
	for _, wl := range s.workloads {
		changes := b.stats(t, wl).TokenChanges
		for _, c := range changes[min(1, len(changes)):] { // the first token was there when the pod started
			if issued, ok := s.watch.issuedAt(c.Value); ok {
				tokens = append(tokens, c.At.Sub(issued))
			}
		}
	}
	b.reportPropagation(t, probe, tokens)
}

// TestSecretPropagation measures only the probe Secret's delay, without the operator, so that it
// can run on a node with the kubelet's default syncFrequency (1m), where the suite's 45-second
// tokens would expire before they arrive: `make node-propagation`. It runs when
// MAUTIC_NODE_PROPAGATION_SAMPLES is set (the number of updates to time) and skips otherwise, so
// `make test-node` leaves it out.
func TestSecretPropagation(t *testing.T) {
	b := requireBed(t)
	samples, err := strconv.Atoi(os.Getenv("MAUTIC_NODE_PROPAGATION_SAMPLES"))
	if err != nil || samples <= 0 {
		t.Skip("MAUTIC_NODE_PROPAGATION_SAMPLES is not set: make node-propagation runs this measurement")
	}
	const apps = "node-propagation"
	b.createNamespace(t, apps)
	site := b.deployMautic(t, apps, time.Hour)
	b.ensureProbeSecret(t, apps)
	// The workload's calls need a token Secret to mount; this one's token is refused, which the
	// measurement does not look at.
	must(t, b.client.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "unused-token", Namespace: apps},
		Data:       map[string][]byte{authv1alpha1.AuthorizationKey: []byte("Bearer unused")},
	}), "creating the workload's token Secret")
	w := b.deployWorkload(t, apps, "probe-workload", "unused-token", site)
	b.waitDeploymentReady(t, apps, w.name, 1)
	b.reportPropagation(t, b.timeProbeUpdates(t, apps, w, samples), nil)
}

// timeProbeUpdates updates the probe Secret n times and returns, for each update, how long until
// the workload read the new content from its volume.
func (b *bed) timeProbeUpdates(t *testing.T, namespace string, w *workload, n int) []time.Duration {
	t.Helper()
	var probe []time.Duration
	for i := 1; i <= n; i++ {
		value := fmt.Sprintf("update-%d-%d", i, time.Now().UnixNano())
		secret := &corev1.Secret{}
		must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: probeSecretName}, secret), "reading the probe Secret")
		secret.Data[probeKey] = []byte(value)
		must(t, b.client.Update(t.Context(), secret), "updating the probe Secret")
		updated := time.Now()
		var seen time.Time
		b.eventually(t, 3*time.Minute, "the workload to read the probe Secret's update "+value, func() (bool, string) {
			for _, c := range b.stats(t, w).WatchChanges {
				if c.Value == value {
					seen = c.At
					return true, ""
				}
			}
			return false, "not read yet"
		})
		probe = append(probe, seen.Sub(updated))
		t.Logf("probe update %d of %d read after %s", i, n, seen.Sub(updated).Round(10*time.Millisecond))
		// The next update lands at another moment of the kubelet's sync period.
		time.Sleep(time.Duration(i) * 700 * time.Millisecond)
	}
	return probe
}

// reportPropagation logs the delays and adds them to the report, with the kubelet's syncFrequency.
func (b *bed) reportPropagation(t *testing.T, probe, tokens []time.Duration) {
	t.Helper()
	syncFrequency := b.kubeletSyncFrequency(t)
	t.Logf("Secret volume propagation (kubelet syncFrequency %s): probe Secret update to file content %s; token issued to file content %s",
		syncFrequency, summary(probe), summary(tokens))
	b.writeReport(t, fmt.Sprintf("## Secret volume propagation\n\n"+
		"kubelet syncFrequency: %s\n\n"+
		"| what | samples | min | median | max |\n|---|---|---|---|---|\n"+
		"| probe Secret updated -> new content in the pod's file | %s |\n"+
		"| token issued (operator) -> new token in the workload's file | %s |\n\n",
		syncFrequency, row(probe), row(tokens)))
}

// kubeletSyncFrequency reads the kubelet's syncFrequency from its configuration (configz).
func (b *bed) kubeletSyncFrequency(t *testing.T) string {
	t.Helper()
	raw, err := b.clientset.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", b.nodeName, "proxy", "configz").DoRaw(t.Context())
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	const key = `"syncFrequency":"`
	s := string(raw)
	i := strings.Index(s, key)
	if i < 0 {
		return "unknown"
	}
	s = s[i+len(key):]
	return s[:strings.IndexByte(s, '"')]
}

// summary describes durations as "n samples, min / median / max".
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%d samples, min %s, median %s, max %s", len(s), s[0].Round(10*time.Millisecond),
		s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

// row is summary as a markdown table row's cells.
func row(ds []time.Duration) string {
	if len(ds) == 0 {
		return "0 | - | - | -"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("%d | %s | %s | %s", len(s), r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}
