package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// metricsNamespace holds the ServiceAccounts that scrape the manager's metrics.
const metricsNamespace = "e2e-metrics"

// TestMetrics: the manager serves its metrics over HTTPS to a ServiceAccount bound to the
// metrics-reader ClusterRole of config/default, as a Prometheus would be, and to no one else. The
// sample connection has its series; a requested refresh is counted and its token request timed;
// no series holds a token or a secret.
func TestMetrics(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	conn := s.waitSampleReady(ctx, g)
	g.Expect(s.metricsReaderRole).NotTo(BeEmpty(), "config/default renders a ClusterRole that allows GET /metrics")

	// Kubernetes authentication and authorization guard the endpoint.
	code, _ := s.scrape(ctx, g, "")
	g.Expect(code).To(Equal(http.StatusUnauthorized), "a scrape without a token")
	code, _ = s.scrape(ctx, g, s.serviceAccountToken(ctx, g, "not-a-scraper", ""))
	g.Expect(code).To(Equal(http.StatusForbidden), "a scrape by a ServiceAccount not bound to %s", s.metricsReaderRole)

	connection := map[string]string{"namespace": conn.Namespace, "name": conn.Name}
	success := withLabels(connection, "result", "success")
	clientCredentials200 := map[string]string{"grant": string(mautic.GrantClientCredentials), "code": "200"}
	before := s.scrapeMetrics(ctx, g)
	successBefore := before.value("mautic_operator_refresh_total", success)
	requestsBefore := before.value("mautic_operator_token_request_duration_seconds_count", clientCredentials200)

	// A refresh, so that the counters move whatever ran before.
	requested := time.Now().UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{authv1alpha1.RefreshRequestedAtAnnotation: requested}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.env.Client.Patch(ctx, conn.DeepCopy(), client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, client.ObjectKeyFromObject(conn), conn)).To(Succeed())
		g.Expect(conn.Status.LastHandledRefreshRequest).To(Equal(requested))
	}).Should(Succeed())
	g.Expect(conn.Status.ExpiresAt).NotTo(BeNil())

	var metrics scraped
	g.Eventually(func(g Gomega) {
		metrics = s.scrapeMetrics(ctx, g)
		g.Expect(metrics.value("mautic_operator_connection_ready", connection)).To(Equal(1.0))
		g.Expect(metrics.has("mautic_operator_connection_stalled", connection)).To(BeTrue())
		g.Expect(metrics.value("mautic_operator_connection_stalled", connection)).To(Equal(0.0))
		g.Expect(metrics.value("mautic_operator_refresh_total", success)).To(BeNumerically(">=", successBefore+1))
		g.Expect(metrics.value("mautic_operator_token_request_duration_seconds_count", clientCredentials200)).
			To(BeNumerically(">=", requestsBefore+1))
		g.Expect(metrics.has("mautic_operator_token_expiry_timestamp_seconds", connection)).To(BeTrue())
		g.Expect(metrics.value("mautic_operator_token_expiry_timestamp_seconds", connection)).
			To(BeNumerically("~", float64(conn.Status.ExpiresAt.Unix()), 1), "the expiry of the token just published")
	}).Should(Succeed())
	g.Expect(metrics.has("mautic_operator_token_renewal_timestamp_seconds", connection)).To(BeTrue())
	g.Expect(metrics.has("mautic_operator_refresh_token_expiry_timestamp_seconds", connection)).To(BeFalse(),
		"a ClientCredentials connection has no refresh token")

	g.Expect(leakedValues([]byte(metrics.text), s.secretValues(ctx, g))).To(BeEmpty(),
		"the metrics endpoint shows these values (not printed here)")

	var operatorSeries []string // shown only once no secret is found in them
	for line := range strings.Lines(metrics.text) {
		if strings.HasPrefix(line, "mautic_operator_") && !strings.Contains(line, "_bucket{") {
			operatorSeries = append(operatorSeries, strings.TrimSpace(line))
		}
	}
	t.Logf("the operator's series:\n%s", strings.Join(operatorSeries, "\n"))
}

// scrape GETs /metrics from the main manager with a bearer token ("" for none) and returns the
// status code and body.
func (s *suite) scrape(ctx context.Context, g Gomega, token string) (int, string) {
	httpClient := &http.Client{
		Timeout: 10 * time.Second,
		// The manager serves metrics with a self-signed certificate unless it is given one.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.metricsAddr+"/metrics", nil)
	g.Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

// scrapeMetrics scrapes the main manager as a ServiceAccount bound to the metrics-reader
// ClusterRole and parses the answer.
func (s *suite) scrapeMetrics(ctx context.Context, g Gomega) scraped {
	if s.metricsToken == "" {
		s.metricsToken = s.serviceAccountToken(ctx, g, "prometheus", s.metricsReaderRole)
	}
	code, body := s.scrape(ctx, g, s.metricsToken)
	g.Expect(code).To(Equal(http.StatusOK), "GET /metrics: %s", body)
	metrics, err := parseMetrics(body)
	g.Expect(err).NotTo(HaveOccurred())
	return metrics
}

// serviceAccountToken creates the ServiceAccount metricsNamespace/name, binds it to clusterRole
// unless that is empty, and returns a token for it from the TokenRequest API.
func (s *suite) serviceAccountToken(ctx context.Context, g Gomega, name, clusterRole string) string {
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: metricsNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: metricsNamespace, Name: name}},
	}
	if clusterRole != "" {
		objects = append(objects, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + name + "-" + clusterRole},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: metricsNamespace, Name: name}},
		})
	}
	for _, obj := range objects {
		err := s.env.Client.Create(ctx, obj)
		g.Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
	}
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	serviceAccount := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: metricsNamespace, Name: name}}
	g.Expect(s.env.Client.SubResource("token").Create(ctx, serviceAccount, request)).To(Succeed())
	g.Expect(request.Status.Token).NotTo(BeEmpty())
	return request.Status.Token
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scraped is a parsed scrape.
type scraped struct {
	text    string
	samples []sample
}

// value returns the value of the first sample of metric name whose labels include labels, or 0
// when there is none.
func (m scraped) value(name string, labels map[string]string) float64 {
	value, _ := m.find(name, labels)
	return value
}

// has reports whether a sample of metric name has labels among its labels.
func (m scraped) has(name string, labels map[string]string) bool {
	_, found := m.find(name, labels)
	return found
}

// find returns the value of the first sample of metric name whose labels include labels.
func (m scraped) find(name string, labels map[string]string) (float64, bool) {
	for _, sample := range m.samples {
		if sample.name != name {
			continue
		}
		matches := true
		for key, value := range labels {
			if sample.labels[key] != value {
				matches = false
				break
			}
		}
		if matches {
			return sample.value, true
		}
	}
	return 0, false
}

// withLabels returns a copy of labels with more key-value pairs added.
func withLabels(labels map[string]string, keyValues ...string) map[string]string {
	out := make(map[string]string, len(labels)+len(keyValues)/2)
	for key, value := range labels {
		out[key] = value
	}
	for i := 0; i+1 < len(keyValues); i += 2 {
		out[keyValues[i]] = keyValues[i+1]
	}
	return out
}

// parseMetrics parses the Prometheus text exposition format, enough for the manager's metrics:
// `name{key="value",...} value` lines without timestamps; comments are skipped.
func parseMetrics(text string) (scraped, error) {
	metrics := scraped{text: text}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sep := strings.LastIndexByte(line, ' ')
		if sep < 0 {
			return metrics, fmt.Errorf("metric line without a value: %q", line)
		}
		value, err := strconv.ParseFloat(line[sep+1:], 64)
		if err != nil {
			return metrics, fmt.Errorf("metric line %q: %w", line, err)
		}
		series := line[:sep]
		s := sample{name: series, labels: map[string]string{}, value: value}
		if open := strings.IndexByte(series, '{'); open >= 0 {
			s.name = series[:open]
			if s.labels, err = parseLabels(strings.TrimSuffix(series[open+1:], "}")); err != nil {
				return metrics, fmt.Errorf("metric line %q: %w", line, err)
			}
		}
		metrics.samples = append(metrics.samples, s)
	}
	return metrics, nil
}

// parseLabels parses `key="value",...`, with the format's escapes in values.
func parseLabels(text string) (map[string]string, error) {
	labels := map[string]string{}
	for text != "" {
		eq := strings.IndexByte(text, '=')
		if eq < 0 || eq+1 >= len(text) || text[eq+1] != '"' {
			return nil, fmt.Errorf("bad labels %q", text)
		}
		key := text[:eq]
		var value strings.Builder
		i := eq + 2
		for ; i < len(text) && text[i] != '"'; i++ {
			if text[i] == '\\' && i+1 < len(text) {
				i++
				if text[i] == 'n' {
					value.WriteByte('\n')
					continue
				}
			}
			value.WriteByte(text[i])
		}
		if i >= len(text) {
			return nil, fmt.Errorf("unterminated label value in %q", text)
		}
		labels[key] = value.String()
		text = strings.TrimPrefix(text[i+1:], ",")
	}
	return labels, nil
}
