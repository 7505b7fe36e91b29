package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	w := s.workloads[0]
	var probe []time.Duration
	for i := 1; i <= propagationSamples; i++ {
		value := fmt.Sprintf("update-%d-%d", i, time.Now().UnixNano())
		secret := &corev1.Secret{}
		must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: s.apps, Name: probeSecretName}, secret), "reading the probe Secret")
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
		// The next update lands at another moment of the kubelet's sync period.
		time.Sleep(time.Duration(i) * 700 * time.Millisecond)
	}

	var tokens []time.Duration
	for _, wl := range s.workloads {
		changes := b.stats(t, wl).TokenChanges
		for _, c := range changes[min(1, len(changes)):] { // the first token was there when the pod started
			if issued, ok := s.watch.issuedAt(c.Value); ok {
				tokens = append(tokens, c.At.Sub(issued))
			}
		}
	}
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
