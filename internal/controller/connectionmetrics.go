package controller

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// The per-connection series: five gauges from the status and the refresh counters by result.
// They are kept as one small record per connection and rendered when Prometheus scrapes, instead
// of as one client_golang series object per gauge and counter: those cost about 5 KiB per
// connection (label pairs, hashes, descriptors), a fifth of the manager's heap per connection.

// Indexes of a connection's series in connectionSample.
const (
	seriesTokenExpiry = iota
	seriesTokenRenewal
	seriesRefreshTokenExpiry
	seriesReady
	seriesStalled
	seriesFirstRefreshResult // then one counter per refreshResults entry
	seriesCount              = seriesFirstRefreshResult + 4
)

// connectionSample holds one connection's series; an absent series is NaN.
type connectionSample [seriesCount]float64

// connectionSeries is the collector of every connection's series.
type connectionSeries struct {
	mu      sync.Mutex
	samples map[types.NamespacedName]*connectionSample

	descs      [seriesFirstRefreshResult]*prometheus.Desc
	refreshes  *prometheus.Desc
	valueTypes [seriesFirstRefreshResult]prometheus.ValueType
}

func newConnectionSeries() *connectionSeries {
	gauge := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, connectionLabels, nil)
	}
	s := &connectionSeries{samples: map[types.NamespacedName]*connectionSample{}}
	s.descs = [seriesFirstRefreshResult]*prometheus.Desc{
		seriesTokenExpiry: gauge("token_expiry_timestamp_seconds",
			"When the published access token expires, in seconds since the Unix epoch; absent for Basic credentials, which do not expire."),
		seriesTokenRenewal: gauge("token_renewal_timestamp_seconds",
			"When the operator next refreshes the token (Basic: re-verifies the credentials), in seconds since the Unix epoch; absent while suspended."),
		seriesRefreshTokenExpiry: gauge("refresh_token_expiry_timestamp_seconds",
			"When the stored refresh token lapses if unused, in seconds since the Unix epoch (AuthorizationCode only)."),
		seriesReady: gauge("connection_ready",
			"1 when the connection's Ready condition is True, else 0."),
		seriesStalled: gauge("connection_stalled",
			"1 when the connection's Stalled condition is True (a person must act), else 0."),
	}
	for i := range s.valueTypes {
		s.valueTypes[i] = prometheus.GaugeValue
	}
	s.refreshes = prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", "refresh_total"),
		"Attempts to obtain a new token, by result: success, transient_error, configuration_error or reauthorization_required.",
		append(append([]string{}, connectionLabels...), "result"), nil)
	return s
}

// Describe implements prometheus.Collector.
func (s *connectionSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, desc := range s.descs {
		ch <- desc
	}
	ch <- s.refreshes
}

// Collect implements prometheus.Collector.
func (s *connectionSeries) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, sample := range s.samples {
		for i, desc := range s.descs {
			if !math.IsNaN(sample[i]) {
				ch <- prometheus.MustNewConstMetric(desc, s.valueTypes[i], sample[i], key.Namespace, key.Name)
			}
		}
		for i, result := range refreshResults {
			if v := sample[seriesFirstRefreshResult+i]; !math.IsNaN(v) {
				ch <- prometheus.MustNewConstMetric(s.refreshes, prometheus.CounterValue, v, key.Namespace, key.Name, result)
			}
		}
	}
}

// sample returns the connection's sample, created with every series absent; s.mu is held.
func (s *connectionSeries) sample(key types.NamespacedName) *connectionSample {
	sample, ok := s.samples[key]
	if !ok {
		sample = &connectionSample{}
		for i := range sample {
			sample[i] = math.NaN()
		}
		s.samples[key] = sample
	}
	return sample
}

// record sets the gauges from the connection's status and creates its refresh counters at zero,
// so that rate() and increase() see its first failure. A timestamp the status does not have (or
// that means nothing for the grant) is removed, not left stale.
func (s *connectionSeries) record(conn *authv1alpha1.MauticConnection) {
	status := &conn.Status
	grant := conn.EffectiveGrant()
	s.mu.Lock()
	defer s.mu.Unlock()
	sample := s.sample(types.NamespacedName{Namespace: conn.Namespace, Name: conn.Name})
	sample[seriesTokenExpiry] = timestampValue(status.ExpiresAt, grant != authv1alpha1.GrantBasic)
	sample[seriesTokenRenewal] = timestampValue(status.RenewAt, !conn.Spec.Suspend)
	sample[seriesRefreshTokenExpiry] = timestampValue(status.RefreshTokenExpiresAt, grant == authv1alpha1.GrantAuthorizationCode)
	sample[seriesReady] = boolValue(meta.IsStatusConditionTrue(status.Conditions, authv1alpha1.ReadyCondition))
	sample[seriesStalled] = boolValue(meta.IsStatusConditionTrue(status.Conditions, authv1alpha1.StalledCondition))
	for i := range refreshResults {
		if math.IsNaN(sample[seriesFirstRefreshResult+i]) {
			sample[seriesFirstRefreshResult+i] = 0
		}
	}
}

// countRefresh adds one attempt with result to the connection's counters.
func (s *connectionSeries) countRefresh(key types.NamespacedName, result string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sample := s.sample(key)
	for i, r := range refreshResults {
		if r == result {
			if math.IsNaN(sample[seriesFirstRefreshResult+i]) {
				sample[seriesFirstRefreshResult+i] = 0
			}
			sample[seriesFirstRefreshResult+i]++
		}
	}
}

// forget removes every series of the connection.
func (s *connectionSeries) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.samples, key)
}

// timestampValue is t in seconds since the epoch, or NaN (no series) when t is unset or not
// meaningful.
func timestampValue(t *metav1.Time, meaningful bool) float64 {
	if t == nil || t.IsZero() || !meaningful {
		return math.NaN()
	}
	return float64(t.UnixNano()) / float64(time.Second)
}
