package testenv

import (
	"context"
	"net/http"
	"time"

	"k8s.io/client-go/rest"

	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/operator"
)

// StartManager starts a manager that watches only namespace, as the real one does with
// --watch-namespaces, built by internal/operator as cmd/manager builds it, with the real Mautic
// client (1s timeout, no rate limit); configure may change the options. It stops when the test
// ends, or earlier through the returned function.
func (cp *ControlPlane) StartManager(t TB, namespace string, configure ...func(*operator.Options)) (stop func()) {
	t.Helper()
	return cp.StartManagerThrough(t, namespace, nil, configure...)
}

// StartManagerThrough is StartManager with the manager's requests to the API server passing
// through wrap (nil: none), so that a test can fail them as an outage would.
func (cp *ControlPlane) StartManagerThrough(t TB, namespace string, wrap func(http.RoundTripper) http.RoundTripper,
	configure ...func(*operator.Options)) (stop func()) {
	t.Helper()
	config := rest.CopyConfig(cp.Config)
	if wrap != nil {
		config.Wrap(wrap)
	}
	opts := operator.Options{
		MetricsAddr:             "0",
		ProbeAddr:               "0",
		Namespaces:              []string{namespace},
		MaxConcurrentReconciles: 1,
		Mautic:                  mautic.Options{Timeout: time.Second, RequestsPerSecond: -1},
		// Tests use tokens of a few seconds.
		MinTokenInterval:             100 * time.Millisecond,
		SkipControllerNameValidation: true,
	}
	for _, change := range configure {
		change(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op, err := operator.New(ctx, config, opts)
	if err != nil {
		cancel()
		t.Fatalf("creating a manager: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := op.Run(ctx); err != nil {
			t.Errorf("manager stopped: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}
