package controller

import (
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// Slow retries of configuration failures: a fix made on Mautic's side (the API enabled, a grant
// allowed, Basic auth switched on) changes nothing in Kubernetes, so the connection looks again on a
// timer that backs off, and heals by itself.
const (
	// DefaultConfigurationRetry is the first retry of a configuration failure: within a minute.
	DefaultConfigurationRetry = 45 * time.Second
	// maxConfigurationRetry caps the back-off.
	maxConfigurationRetry = time.Hour
)

// configurationRetries counts, per connection, the configuration failures in a row with the same
// inputs; a change of the spec, a Secret or a refresh request starts the back-off again.
type configurationRetries struct {
	mu       sync.Mutex
	attempts map[types.NamespacedName]retryState
}

// retryState is one connection's run of configuration failures.
type retryState struct {
	inputs   string
	attempts int
}

// next records a failure with inputs and returns how long to wait before the next attempt:
// first, then doubling up to maxConfigurationRetry.
func (c *configurationRetries) next(key types.NamespacedName, inputs string, first time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attempts == nil {
		c.attempts = map[types.NamespacedName]retryState{}
	}
	state := c.attempts[key]
	if state.inputs != inputs {
		state = retryState{inputs: inputs}
	}
	state.attempts++
	c.attempts[key] = state
	delay := first
	for range state.attempts - 1 {
		if delay >= maxConfigurationRetry/2 {
			return maxConfigurationRetry
		}
		delay *= 2
	}
	return min(delay, maxConfigurationRetry)
}

// forget ends a connection's run of failures.
func (c *configurationRetries) forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.attempts, key)
}

// retryConfiguration returns when to try again after the scope's configuration failure, on a slow
// timer that backs off, and says when in the failure's message: a fix made in Mautic then heals
// the connection without anyone touching Kubernetes.
func (r *MauticConnectionReconciler) retryConfiguration(s *scope) time.Duration {
	first := r.ConfigurationRetry
	if first <= 0 {
		first = DefaultConfigurationRetry
	}
	inputs := fmt.Sprintf("%d/%s/%s/%s", s.conn.Generation, s.secretVersions,
		s.conn.Annotations[authv1alpha1.RefreshRequestedAtAnnotation], s.failure.reason)
	delay := r.retries.next(client.ObjectKeyFromObject(s.conn), inputs, first)
	s.failure.message = fmt.Sprintf("%s (next attempt at %s)", s.failure.message, formatTime(s.now.Add(delay)))
	return delay
}
