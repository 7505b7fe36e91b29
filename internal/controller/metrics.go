package controller

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// The operator's Prometheus metrics, served on the manager's metrics endpoint with
// controller-runtime's own. Per-connection series carry only the labels namespace and name;
// no label ever holds a token, a secret, a URL or a message.

// Results of a token refresh, the values of the result label of mautic_operator_refresh_total.
const (
	refreshResultSuccess                 = "success"
	refreshResultTransientError          = "transient_error"
	refreshResultConfigurationError      = "configuration_error"
	refreshResultReauthorizationRequired = "reauthorization_required"
)

// refreshResults are all the refresh results; every connection starts with each at zero, so that
// rate() and increase() see its first failure.
var refreshResults = []string{
	refreshResultSuccess,
	refreshResultTransientError,
	refreshResultConfigurationError,
	refreshResultReauthorizationRequired,
}

// transportErrorCode is the code label of a request that got no HTTP answer at all.
const transportErrorCode = "error"

// requestDurationBuckets cover a fast local Mautic up to the client's default 30s timeout.
var requestDurationBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// operatorMetrics are the operator's collectors. The package registers one set on
// controller-runtime's registry; tests build their own, unregistered, to compare whole vectors.
type operatorMetrics struct {
	connections           *connectionSeries
	tokenRequestDuration  *prometheus.HistogramVec
	verifyRequestDuration *prometheus.HistogramVec
	unpersistedWindow     prometheus.Histogram
}

// metricsNamespace prefixes the name of every metric of the operator.
const metricsNamespace = "mautic_operator"

// connectionLabels are the labels of every per-connection series.
var connectionLabels = []string{"namespace", "name"}

func newOperatorMetrics() *operatorMetrics {
	return &operatorMetrics{
		connections: newConnectionSeries(),
		tokenRequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "token_request_duration_seconds",
			Help:    "Duration of requests to Mautic's token endpoint, by OAuth2 grant_type and HTTP status code (\"error\": no answer).",
			Buckets: requestDurationBuckets,
		}, []string{"grant", "code"}),
		verifyRequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "verify_request_duration_seconds",
			Help:    "Duration of authenticated Mautic API calls that verify a token or Basic credentials, by HTTP status code (\"error\": no answer).",
			Buckets: requestDurationBuckets,
		}, []string{"code"}),
		unpersistedWindow: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "refresh_token_unpersisted_seconds",
			Help: "Time from Mautic's answer to a refresh until the rotated refresh token was durable (in the pending " +
				"directory or the state Secret): the only window in which killing the manager loses the token.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10},
		}),
	}
}

// collectors lists every collector, for registration.
func (m *operatorMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.connections, m.tokenRequestDuration, m.verifyRequestDuration, m.unpersistedWindow,
	}
}

// recordConnection sets the per-connection gauges from the connection's status.
func (m *operatorMetrics) recordConnection(conn *authv1alpha1.MauticConnection) {
	m.connections.record(conn)
}

// forgetConnection deletes every series of the connection.
func (m *operatorMetrics) forgetConnection(key types.NamespacedName) {
	m.connections.forget(key)
}

// recordRefreshResult counts one attempt to obtain a token.
func (m *operatorMetrics) recordRefreshResult(conn *authv1alpha1.MauticConnection, result string) {
	m.connections.countRefresh(types.NamespacedName{Namespace: conn.Namespace, Name: conn.Name}, result)
}

// observeRequest records the duration of one HTTP request to Mautic.
func (m *operatorMetrics) observeRequest(op mautic.Op, grant mautic.Grant, statusCode int, d time.Duration) {
	code := transportErrorCode
	if statusCode > 0 {
		code = strconv.Itoa(statusCode)
	}
	switch op {
	case mautic.OpToken:
		m.tokenRequestDuration.WithLabelValues(string(grant), code).Observe(d.Seconds())
	case mautic.OpVerify:
		m.verifyRequestDuration.WithLabelValues(code).Observe(d.Seconds())
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// operatorMetricsSet is the set served on the manager's metrics endpoint.
var operatorMetricsSet = newOperatorMetrics()

func init() {
	metrics.Registry.MustRegister(operatorMetricsSet.collectors()...)
}

// recordConnectionMetrics sets the per-connection gauges from the status just computed; call it
// after computeStatus.
func recordConnectionMetrics(conn *authv1alpha1.MauticConnection) {
	operatorMetricsSet.recordConnection(conn)
}

// forgetConnectionMetrics deletes every per-connection series once the connection is gone.
func forgetConnectionMetrics(key types.NamespacedName) {
	operatorMetricsSet.forgetConnection(key)
}

// recordRefreshResult counts one attempt to obtain a token; result is one of the refreshResult constants.
func recordRefreshResult(conn *authv1alpha1.MauticConnection, result string) {
	operatorMetricsSet.recordRefreshResult(conn, result)
}

// ObserveMauticRequest records one HTTP request to Mautic in the request-duration histograms: token
// requests by grant and status code, verify calls by status code. It has the signature of
// mautic.Options.Observe, where the manager plugs it in.
func ObserveMauticRequest(op mautic.Op, grant mautic.Grant, statusCode int, d time.Duration) {
	operatorMetricsSet.observeRequest(op, grant, statusCode, d)
}

// observeUnpersistedWindow records how long a rotated refresh token existed only in memory.
func observeUnpersistedWindow(d time.Duration) {
	operatorMetricsSet.unpersistedWindow.Observe(d.Seconds())
}

// refreshResultFor names the refresh result of a failure's class.
func refreshResultFor(class mautic.Class) string {
	switch class {
	case mautic.ClassConfiguration:
		return refreshResultConfigurationError
	case mautic.ClassReauthorization:
		return refreshResultReauthorizationRequired
	default:
		return refreshResultTransientError
	}
}

// refreshResult is the result of this reconcile's attempt to obtain a token; attempted is false
// when no policy asked for one (nothing to count), or when the reconcile stalled before asking
// (the Stalled gauge reports that).
func (s *scope) refreshResult() (result string, attempted bool) {
	switch {
	case s.issuedNow:
		return refreshResultSuccess, true
	case s.failure != nil && s.requestReason != "":
		return refreshResultFor(s.failure.class), true
	default:
		return "", false
	}
}
