package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mautic-operator/mautic-operator/test/node/answers"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Where the workload mounts what it reads.
const (
	tokenMountPath = "/var/run/mautic"
	caMountPath    = "/var/run/mautic-ca"
	probeMountPath = "/var/run/probe"
	// probeSecretName is a Secret of test data whose updates the suite times in the workload.
	probeSecretName = "propagation-probe"
	probeKey        = "value"
	workloadPort    = 8080
)

// workload is a Deployment of test/node/workload that uses one connection's token Secret.
type workload struct {
	namespace, name string
	http            *http.Client
}

// deployWorkload runs a workload that mounts tokenSecret as a whole volume (no subPath), the CA of
// the Mautic test server and the probe Secret, and calls site with the mounted authorization file
// every second.
func (b *bed) deployWorkload(t *testing.T, namespace, name, tokenSecret string, site *mauticSite) *workload {
	t.Helper()
	deploy := suiteDeployment(namespace, name, corev1.Container{
		Name:  "workload",
		Image: workloadImage,
		Args: []string{
			"--url=" + site.URL,
			"--authorization-file=" + tokenMountPath + "/authorization",
			"--ca-file=" + caMountPath + "/ca.crt",
			"--watch-file=" + probeMountPath + "/" + probeKey,
			"--interval=1s",
		},
		Ports:          []corev1.ContainerPort{{Name: "stats", ContainerPort: workloadPort}},
		ReadinessProbe: httpReadiness("/healthz", workloadPort),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "token", MountPath: tokenMountPath, ReadOnly: true},
			{Name: "ca", MountPath: caMountPath, ReadOnly: true},
			{Name: "probe", MountPath: probeMountPath, ReadOnly: true},
		},
	}, secretVolume("token", tokenSecret), secretVolume("ca", caSecretName), secretVolume("probe", probeSecretName))
	must(t, b.client.Create(t.Context(), deploy), "creating the workload "+name)
	return &workload{namespace: namespace, name: name, http: &http.Client{Timeout: 5 * time.Second}}
}

// ensureProbeSecret creates the probe Secret the workloads mount.
func (b *bed) ensureProbeSecret(t *testing.T, namespace string) {
	t.Helper()
	must(t, b.client.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: probeSecretName, Namespace: namespace},
		Data:       map[string][]byte{probeKey: []byte("0")},
	}), "creating the probe Secret")
}

// stats reads the workload's counters from its pod (on the node's pod network, which this
// machine routes to).
func (b *bed) stats(t *testing.T, w *workload) answers.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pods := &corev1.PodList{}
	must(t, b.client.List(ctx, pods, client.InNamespace(w.namespace), client.MatchingLabels{"app": w.name}), "listing the workload's pods")
	var ip string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			if ip != "" {
				t.Fatalf("the workload %s has more than one running pod", w.name)
			}
			ip = p.Status.PodIP
		}
	}
	if ip == "" {
		t.Fatalf("the workload %s has no running pod:\n%s", w.name, b.podsReport(w.namespace))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/stats", ip, workloadPort), nil)
	must(t, err, "building the stats request")
	resp, err := w.http.Do(req)
	must(t, err, "reading the workload's stats")
	defer func() { _ = resp.Body.Close() }()
	var s answers.Stats
	must(t, json.NewDecoder(resp.Body).Decode(&s), "decoding the workload's stats")
	return s
}

// tokenDigest is how the workload names a token: the first 16 hex digits of the SHA-256 of the
// authorization file.
func tokenDigest(authorization []byte) string {
	sum := sha256.Sum256(authorization)
	return hex.EncodeToString(sum[:])[:16]
}
