package controller

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// Fixed instants of the metrics tests; no test reads the clock.
var (
	metricsExpiresAt             = time.Date(2030, time.March, 1, 12, 0, 0, 0, time.UTC)
	metricsRenewAt               = metricsExpiresAt.Add(-20 * time.Minute)
	metricsRefreshTokenExpiresAt = metricsExpiresAt.Add(14 * 24 * time.Hour)
)

// Metric names, as served.
const (
	tokenExpiryMetric        = "mautic_operator_token_expiry_timestamp_seconds"
	tokenRenewalMetric       = "mautic_operator_token_renewal_timestamp_seconds"
	refreshTokenExpiryMetric = "mautic_operator_refresh_token_expiry_timestamp_seconds"
	connectionReadyMetric    = "mautic_operator_connection_ready"
	connectionStalledMetric  = "mautic_operator_connection_stalled"
	refreshTotalMetric       = "mautic_operator_refresh_total"
	tokenRequestMetric       = "mautic_operator_token_request_duration_seconds"
	verifyRequestMetric      = "mautic_operator_verify_request_duration_seconds"
)

// metricsConnection is a connection whose status holds a valid token: expiresAt, renewAt,
// refreshTokenExpiresAt (whatever the grant, to show which grants ignore it) and Ready=True.
func metricsConnection(namespace, name string, grant authv1alpha1.Grant) *authv1alpha1.MauticConnection {
	return &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       authv1alpha1.MauticConnectionSpec{Grant: grant},
		Status: authv1alpha1.MauticConnectionStatus{
			ExpiresAt:             &metav1.Time{Time: metricsExpiresAt},
			RenewAt:               &metav1.Time{Time: metricsRenewAt},
			RefreshTokenExpiresAt: &metav1.Time{Time: metricsRefreshTokenExpiresAt},
			Conditions: []metav1.Condition{{
				Type: authv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: authv1alpha1.TokenValidReason,
			}},
		},
	}
}

// stalled turns conn's status into a stalled one: Ready=False and Stalled=True.
func stalled(conn *authv1alpha1.MauticConnection) *authv1alpha1.MauticConnection {
	conn.Status.Conditions = []metav1.Condition{
		{Type: authv1alpha1.ReadyCondition, Status: metav1.ConditionFalse, Reason: authv1alpha1.InvalidClientReason},
		{Type: authv1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: authv1alpha1.InvalidClientReason},
	}
	return conn
}

// gaugeText is the exposition text of one gauge family with series for the given label pairs.
func gaugeText(metric string, series map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", metric, helpOf(metric), metric)
	for labels, value := range series {
		fmt.Fprintf(&b, "%s{%s} %g\n", metric, labels, value)
	}
	return b.String()
}

// helpOf is the help text of a metric, read from a fresh set given one series in each family.
func helpOf(metric string) string {
	m := populatedMetrics()
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(m.collectors()...)
	families, err := registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, family := range families {
		if family.GetName() == metric {
			return family.GetHelp()
		}
	}
	panic("no metric " + metric)
}

// populatedMetrics is a fresh set with at least one series in every family.
func populatedMetrics() *operatorMetrics {
	m := newOperatorMetrics()
	conn := metricsConnection("shop", "crm", authv1alpha1.GrantAuthorizationCode)
	m.recordConnection(conn)
	m.recordRefreshResult(conn, refreshResultSuccess)
	m.observeRequest(mautic.OpToken, mautic.GrantRefreshToken, 200, time.Second)
	m.observeRequest(mautic.OpVerify, "", 200, time.Second)
	return m
}

func unixSeconds(t time.Time) float64 {
	return float64(t.Unix())
}

func TestMetricsGaugesFromStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		conn  *authv1alpha1.MauticConnection
		want  map[string]map[string]float64 // metric name -> labels -> value; an absent metric has no series
		empty []string                      // metrics with no series
	}{
		{
			name: "ClientCredentials, ready",
			conn: metricsConnection("shop", "crm", authv1alpha1.GrantClientCredentials),
			want: map[string]map[string]float64{
				tokenExpiryMetric:       {`name="crm",namespace="shop"`: unixSeconds(metricsExpiresAt)},
				tokenRenewalMetric:      {`name="crm",namespace="shop"`: unixSeconds(metricsRenewAt)},
				connectionReadyMetric:   {`name="crm",namespace="shop"`: 1},
				connectionStalledMetric: {`name="crm",namespace="shop"`: 0},
			},
			empty: []string{refreshTokenExpiryMetric},
		},
		{
			name: "default grant is ClientCredentials",
			conn: metricsConnection("shop", "crm", ""),
			want: map[string]map[string]float64{
				tokenExpiryMetric: {`name="crm",namespace="shop"`: unixSeconds(metricsExpiresAt)},
			},
			empty: []string{refreshTokenExpiryMetric},
		},
		{
			name: "AuthorizationCode reports the refresh token's expiry",
			conn: metricsConnection("shop", "crm", authv1alpha1.GrantAuthorizationCode),
			want: map[string]map[string]float64{
				tokenExpiryMetric:        {`name="crm",namespace="shop"`: unixSeconds(metricsExpiresAt)},
				tokenRenewalMetric:       {`name="crm",namespace="shop"`: unixSeconds(metricsRenewAt)},
				refreshTokenExpiryMetric: {`name="crm",namespace="shop"`: unixSeconds(metricsRefreshTokenExpiresAt)},
			},
		},
		{
			name: "Basic has no token expiry but a next check",
			conn: metricsConnection("shop", "crm", authv1alpha1.GrantBasic),
			want: map[string]map[string]float64{
				tokenRenewalMetric:    {`name="crm",namespace="shop"`: unixSeconds(metricsRenewAt)},
				connectionReadyMetric: {`name="crm",namespace="shop"`: 1},
			},
			empty: []string{tokenExpiryMetric, refreshTokenExpiryMetric},
		},
		{
			name: "stalled",
			conn: stalled(metricsConnection("shop", "crm", authv1alpha1.GrantClientCredentials)),
			want: map[string]map[string]float64{
				connectionReadyMetric:   {`name="crm",namespace="shop"`: 0},
				connectionStalledMetric: {`name="crm",namespace="shop"`: 1},
			},
		},
		{
			name: "no status yet: only readiness",
			conn: &authv1alpha1.MauticConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "crm"}},
			want: map[string]map[string]float64{
				connectionReadyMetric:   {`name="crm",namespace="shop"`: 0},
				connectionStalledMetric: {`name="crm",namespace="shop"`: 0},
			},
			empty: []string{tokenExpiryMetric, tokenRenewalMetric, refreshTokenExpiryMetric},
		},
		{
			name: "suspended: no next refresh",
			conn: func() *authv1alpha1.MauticConnection {
				conn := metricsConnection("shop", "crm", authv1alpha1.GrantClientCredentials)
				conn.Spec.Suspend = true
				return conn
			}(),
			want: map[string]map[string]float64{
				tokenExpiryMetric: {`name="crm",namespace="shop"`: unixSeconds(metricsExpiresAt)},
			},
			empty: []string{tokenRenewalMetric},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			m := newOperatorMetrics()
			m.recordConnection(tt.conn)
			for metric, series := range tt.want {
				g.Expect(testutil.CollectAndCompare(collectorOf(m, metric), strings.NewReader(gaugeText(metric, series)), metric)).
					To(Succeed(), metric)
			}
			for _, metric := range tt.empty {
				g.Expect(testutil.CollectAndCount(collectorOf(m, metric), metric)).To(BeZero(), metric)
			}
		})
	}
}

// family is the collector of one metric family of a collector that serves several.
type family struct {
	collector prometheus.Collector
	name      string
}

// Describe implements prometheus.Collector.
func (f family) Describe(ch chan<- *prometheus.Desc) {
	descs := make(chan *prometheus.Desc)
	go func() { f.collector.Describe(descs); close(descs) }()
	for desc := range descs {
		if f.holds(desc) {
			ch <- desc
		}
	}
}

// Collect implements prometheus.Collector.
func (f family) Collect(ch chan<- prometheus.Metric) {
	metrics := make(chan prometheus.Metric)
	go func() { f.collector.Collect(metrics); close(metrics) }()
	for metric := range metrics {
		if f.holds(metric.Desc()) {
			ch <- metric
		}
	}
}

func (f family) holds(desc *prometheus.Desc) bool {
	return strings.Contains(desc.String(), `fqName: "`+f.name+`"`)
}

// collectorOf returns m's collector of a metric name.
func collectorOf(m *operatorMetrics, metric string) prometheus.Collector {
	collectors := map[string]prometheus.Collector{
		tokenExpiryMetric:        family{m.connections, tokenExpiryMetric},
		tokenRenewalMetric:       family{m.connections, tokenRenewalMetric},
		refreshTokenExpiryMetric: family{m.connections, refreshTokenExpiryMetric},
		connectionReadyMetric:    family{m.connections, connectionReadyMetric},
		connectionStalledMetric:  family{m.connections, connectionStalledMetric},
		refreshTotalMetric:       family{m.connections, refreshTotalMetric},
		tokenRequestMetric:       m.tokenRequestDuration,
		verifyRequestMetric:      m.verifyRequestDuration,
	}
	return collectors[metric]
}

func TestMetricsStatusChangesUpdateSeries(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m := newOperatorMetrics()
	conn := metricsConnection("shop", "crm", authv1alpha1.GrantAuthorizationCode)
	m.recordConnection(conn)
	g.Expect(testutil.ToFloat64(collectorOf(m, connectionReadyMetric))).To(Equal(1.0))
	g.Expect(testutil.CollectAndCount(collectorOf(m, refreshTokenExpiryMetric))).To(Equal(1))

	// A renewed token moves both timestamps.
	renewed := metricsExpiresAt.Add(time.Hour)
	conn.Status.ExpiresAt = &metav1.Time{Time: renewed}
	conn.Status.RenewAt = &metav1.Time{Time: renewed.Add(-20 * time.Minute)}
	m.recordConnection(conn)
	g.Expect(testutil.ToFloat64(collectorOf(m, tokenExpiryMetric))).To(Equal(unixSeconds(renewed)))
	g.Expect(testutil.ToFloat64(collectorOf(m, tokenRenewalMetric))).To(Equal(unixSeconds(renewed.Add(-20 * time.Minute))))

	// Switching to Basic clears the token and refresh-token expiries, even while the status still
	// holds stale times.
	conn.Spec.Grant = authv1alpha1.GrantBasic
	m.recordConnection(conn)
	g.Expect(testutil.CollectAndCount(collectorOf(m, tokenExpiryMetric))).To(BeZero())
	g.Expect(testutil.CollectAndCount(collectorOf(m, refreshTokenExpiryMetric))).To(BeZero())
	g.Expect(testutil.CollectAndCount(collectorOf(m, tokenRenewalMetric))).To(Equal(1))

	// Stalling flips readiness.
	m.recordConnection(stalled(conn))
	g.Expect(testutil.ToFloat64(collectorOf(m, connectionReadyMetric))).To(BeZero())
	g.Expect(testutil.ToFloat64(collectorOf(m, connectionStalledMetric))).To(Equal(1.0))
}

func TestMetricsForgetRemovesEverySeries(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m := newOperatorMetrics()
	gone := metricsConnection("shop", "crm", authv1alpha1.GrantAuthorizationCode)
	kept := metricsConnection("shop", "crm-eu", authv1alpha1.GrantAuthorizationCode)
	sameNameElsewhere := metricsConnection("other", "crm", authv1alpha1.GrantAuthorizationCode)
	for _, conn := range []*authv1alpha1.MauticConnection{gone, kept, sameNameElsewhere} {
		m.recordConnection(conn)
		m.recordRefreshResult(conn, refreshResultSuccess)
	}
	m.observeRequest(mautic.OpToken, mautic.GrantRefreshToken, 200, 100*time.Millisecond)

	m.forgetConnection(types.NamespacedName{Namespace: "shop", Name: "crm"})

	for _, metric := range []string{tokenExpiryMetric, tokenRenewalMetric, refreshTokenExpiryMetric, connectionReadyMetric, connectionStalledMetric} {
		g.Expect(testutil.CollectAndCount(collectorOf(m, metric), metric)).To(Equal(2), metric)
	}
	g.Expect(testutil.CollectAndCount(collectorOf(m, refreshTotalMetric))).To(Equal(2*len(refreshResults)), "the other connections keep their counters")
	g.Expect(testutil.CollectAndCompare(collectorOf(m, connectionReadyMetric), strings.NewReader(gaugeText(connectionReadyMetric, map[string]float64{
		`name="crm-eu",namespace="shop"`: 1,
		`name="crm",namespace="other"`:   1,
	})))).To(Succeed())
	g.Expect(testutil.CollectAndCount(m.tokenRequestDuration)).To(Equal(1), "request histograms are not per connection")

	m.forgetConnection(types.NamespacedName{Namespace: "shop", Name: "never-seen"})
	g.Expect(testutil.CollectAndCount(collectorOf(m, connectionReadyMetric))).To(Equal(2), "forgetting an unknown connection is a no-op")
}

func TestMetricsRefreshResults(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m := newOperatorMetrics()
	conn := metricsConnection("shop", "crm", authv1alpha1.GrantClientCredentials)

	m.recordConnection(conn)
	g.Expect(testutil.CollectAndCompare(collectorOf(m, refreshTotalMetric), strings.NewReader(refreshText(map[string]float64{})))).
		To(Succeed(), "every result starts at zero so that rate() sees the first failure")

	m.recordRefreshResult(conn, refreshResultSuccess)
	m.recordRefreshResult(conn, refreshResultTransientError)
	m.recordRefreshResult(conn, refreshResultTransientError)
	m.recordRefreshResult(conn, refreshResultReauthorizationRequired)
	m.recordConnection(conn) // recording the status again leaves the counters alone
	g.Expect(testutil.CollectAndCompare(collectorOf(m, refreshTotalMetric), strings.NewReader(refreshText(map[string]float64{
		refreshResultSuccess:                 1,
		refreshResultTransientError:          2,
		refreshResultReauthorizationRequired: 1,
	})))).To(Succeed())
}

// refreshText is the exposition text of shop/crm's refresh counters; results not given are 0.
func refreshText(counts map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", refreshTotalMetric, helpOf(refreshTotalMetric), refreshTotalMetric)
	for _, result := range refreshResults {
		fmt.Fprintf(&b, "%s{name=\"crm\",namespace=\"shop\",result=%q} %g\n", refreshTotalMetric, result, counts[result])
	}
	return b.String()
}

func TestMetricsRefreshResultOfReconcile(t *testing.T) {
	t.Parallel()
	conn := metricsConnection("shop", "crm", authv1alpha1.GrantAuthorizationCode)
	tests := []struct {
		name          string
		scope         scope
		wantResult    string
		wantAttempted bool
	}{
		{name: "nothing needed", scope: scope{conn: conn}},
		{name: "new token", scope: scope{conn: conn, requestReason: authv1alpha1.RenewalDueReason, issuedNow: true},
			wantResult: refreshResultSuccess, wantAttempted: true},
		{name: "transient failure", wantResult: refreshResultTransientError, wantAttempted: true,
			scope: scope{conn: conn, requestReason: authv1alpha1.RenewalDueReason,
				failure: &failure{class: mautic.ClassTransient, reason: authv1alpha1.RefreshFailedReason}}},
		{name: "configuration failure", wantResult: refreshResultConfigurationError, wantAttempted: true,
			scope: scope{conn: conn, requestReason: authv1alpha1.NoTokenReason,
				failure: &failure{class: mautic.ClassConfiguration, reason: authv1alpha1.InvalidClientReason}}},
		{name: "refresh token refused", wantResult: refreshResultReauthorizationRequired, wantAttempted: true,
			scope: scope{conn: conn, requestReason: authv1alpha1.RenewalDueReason,
				failure: &failure{class: mautic.ClassReauthorization, reason: authv1alpha1.ReauthorizationRequiredReason}}},
		{name: "stalled before any request", scope: scope{conn: conn,
			failure: &failure{class: mautic.ClassConfiguration, reason: authv1alpha1.CredentialsSecretNotFoundReason}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			result, attempted := tt.scope.refreshResult()
			g.Expect(attempted).To(Equal(tt.wantAttempted))
			g.Expect(result).To(Equal(tt.wantResult))
		})
	}
}

func TestMetricsRequestDurations(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m := newOperatorMetrics()
	m.observeRequest(mautic.OpToken, mautic.GrantClientCredentials, 200, 40*time.Millisecond)
	m.observeRequest(mautic.OpToken, mautic.GrantClientCredentials, 200, 300*time.Millisecond)
	m.observeRequest(mautic.OpToken, mautic.GrantRefreshToken, 400, 20*time.Millisecond)
	m.observeRequest(mautic.OpToken, mautic.GrantClientCredentials, 0, 30*time.Second)
	m.observeRequest(mautic.OpVerify, "", 200, 60*time.Millisecond)
	m.observeRequest(mautic.OpVerify, "", 0, 2*time.Second)
	m.observeRequest(mautic.Op("future"), "", 200, time.Second)

	g.Expect(testutil.CollectAndCompare(m.tokenRequestDuration, strings.NewReader(histogramText(tokenRequestMetric, []histogramSeries{
		{labels: `code="200",grant="client_credentials"`, observations: []float64{0.04, 0.3}},
		{labels: `code="400",grant="refresh_token"`, observations: []float64{0.02}},
		{labels: `code="error",grant="client_credentials"`, observations: []float64{30}},
	})))).To(Succeed())
	g.Expect(testutil.CollectAndCompare(m.verifyRequestDuration, strings.NewReader(histogramText(verifyRequestMetric, []histogramSeries{
		{labels: `code="200"`, observations: []float64{0.06}},
		{labels: `code="error"`, observations: []float64{2}},
	})))).To(Succeed())
}

// histogramSeries is one series of a request-duration histogram and the durations it observed.
type histogramSeries struct {
	labels       string
	observations []float64
}

// histogramText is the exposition text of a request-duration histogram.
func histogramText(metric string, series []histogramSeries) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s histogram\n", metric, helpOf(metric), metric)
	for _, s := range series {
		sum := 0.0
		for _, o := range s.observations {
			sum += o
		}
		for _, le := range append(append([]float64{}, requestDurationBuckets...), -1) {
			count, bound := 0, "+Inf"
			for _, o := range s.observations {
				if le < 0 || o <= le {
					count++
				}
			}
			if le >= 0 {
				bound = fmt.Sprintf("%g", le)
			}
			fmt.Fprintf(&b, "%s_bucket{%s,le=%q} %d\n", metric, s.labels, bound, count)
		}
		fmt.Fprintf(&b, "%s_sum{%s} %g\n%s_count{%s} %d\n", metric, s.labels, sum, metric, s.labels, len(s.observations))
	}
	return b.String()
}

func TestMetricsFollowPrometheusConventions(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	m := populatedMetrics()
	registry := prometheus.NewPedanticRegistry()
	g.Expect(registry.Register(collectorsOf(m))).To(Succeed())
	_, err := registry.Gather()
	g.Expect(err).NotTo(HaveOccurred(), "Describe and Collect agree")
	for _, c := range m.collectors() {
		problems, err := testutil.CollectAndLint(c)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(problems).To(BeEmpty())
	}
}

// collectorsOf wraps a set's collectors in one, for a single registration.
func collectorsOf(m *operatorMetrics) prometheus.Collector {
	return multiCollector(m.collectors())
}

type multiCollector []prometheus.Collector

func (mc multiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range mc {
		c.Describe(ch)
	}
}

func (mc multiCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range mc {
		c.Collect(ch)
	}
}

// TestMetricsRegistered checks the package's set is served by controller-runtime's registry and
// that the package functions feed it. Other tests of the package run real reconciles that feed
// the same set, so this one uses names of its own and counts rather than comparing whole vectors.
func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	for _, c := range newOperatorMetrics().collectors() {
		var already prometheus.AlreadyRegisteredError
		g.Expect(errors.As(metrics.Registry.Register(c), &already)).To(BeTrue(), "registered once, in init")
	}

	conn := metricsConnection("metrics-registered", "crm", authv1alpha1.GrantAuthorizationCode)
	recordConnectionMetrics(conn)
	recordRefreshResult(conn, refreshResultTransientError)
	ObserveMauticRequest(mautic.OpToken, mautic.GrantRefreshToken, 503, time.Second)
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(valueIn(families, tokenExpiryMetric, map[string]string{"namespace": "metrics-registered", "name": "crm"})).
		To(Equal(unixSeconds(metricsExpiresAt)))
	g.Expect(valueIn(families, refreshTotalMetric, map[string]string{"namespace": "metrics-registered", "name": "crm", "result": refreshResultTransientError})).
		To(Equal(1.0))
	served := map[string]bool{}
	for _, family := range families {
		served[family.GetName()] = true
	}
	for _, metric := range []string{tokenExpiryMetric, tokenRenewalMetric, refreshTokenExpiryMetric,
		connectionReadyMetric, connectionStalledMetric, refreshTotalMetric, tokenRequestMetric} {
		g.Expect(served).To(HaveKey(metric))
	}

	forgetConnectionMetrics(types.NamespacedName{Namespace: "metrics-registered", Name: "crm"})
	families, err = metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, family := range families {
		for _, series := range family.GetMetric() {
			for _, label := range series.GetLabel() {
				g.Expect(label.GetName() == "namespace" && label.GetValue() == "metrics-registered").
					To(BeFalse(), "%s still has a series of the forgotten connection", family.GetName())
			}
		}
	}
}

// valueIn is the value of the gauge or counter series of metric with exactly labels; NaN without one.
func valueIn(families []*dto.MetricFamily, metric string, labels map[string]string) float64 {
	for _, family := range families {
		if family.GetName() != metric {
			continue
		}
	series:
		for _, m := range family.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, pair := range m.GetLabel() {
				if labels[pair.GetName()] != pair.GetValue() {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return math.NaN()
}
