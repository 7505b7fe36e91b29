// Package operator wires the mautic-operator's manager: the caches, the reconciler with its
// Mautic client, leader election, probes, metrics, the replay of rotated refresh tokens that an
// earlier process could not persist, and a shutdown that lets every claimed refresh finish.
// cmd/manager and the test harness build the manager here, so that tests run what ships.
package operator

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/apiclock"
	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/pending"
	"github.com/mautic-operator/mautic-operator/internal/scheme"
)

// LeaderElectionID names the Lease that elects the replica refreshing tokens.
const LeaderElectionID = "mautic-operator.auth.mautic-operator.dev"

// shutdownMargin is the time graceful shutdown allows beyond the longest critical section, for
// the status patch and the events that follow it.
const shutdownMargin = 10 * time.Second

// startupStopTimeout is how long a manager that never reconciled gets to stop after its context ends.
const startupStopTimeout = 5 * time.Second

// Options are the manager's settings; cmd/manager fills them from its flags.
type Options struct {
	// MetricsAddr is the metrics endpoint's address; "0" disables it.
	MetricsAddr string
	// MetricsSecure serves metrics over HTTPS with Kubernetes authentication and authorization.
	MetricsSecure bool
	// ProbeAddr is the health and readiness probes' address; "0" disables them.
	ProbeAddr string
	// ProfilingAddr serves Go's profiles (/debug/pprof/) unauthenticated; "" or "0" disables them.
	ProfilingAddr string
	// LeaderElect elects a leader, so that one replica refreshes tokens at a time.
	LeaderElect bool
	// LeaderElectionNamespace holds the leader election Lease; default the manager's own namespace.
	LeaderElectionNamespace string
	// Namespaces restricts what is watched; empty watches all namespaces.
	Namespaces []string
	// ConnectionSelector restricts the MauticConnections this manager serves to those its labels
	// match, so that connections can be split across manager deployments (shards); nil serves all.
	// Each shard elects its own leader.
	ConnectionSelector labels.Selector
	// MaxConcurrentReconciles is how many connections are reconciled at once.
	MaxConcurrentReconciles int
	// Mautic configures the Mautic client; its Timeout also bounds a refresh's critical section.
	Mautic mautic.Options
	// PendingDir keeps rotated refresh tokens that could not be persisted yet, across restarts of
	// the process; empty keeps them in memory only.
	PendingDir string
	// ClaimTTL is how long another manager's refresh claim blocks a refresh; default
	// controller.DefaultClaimTTL. Tests shorten it; the manager has no flag for it.
	ClaimTTL time.Duration
	// RequireCredentialsLabel makes credentials Secrets usable only with the label
	// auth.mautic-operator.dev/credentials=true.
	RequireCredentialsLabel bool
	// MinTokenInterval is the least time between two token requests of one connection; default
	// controller.DefaultMinTokenInterval, negative for none.
	MinTokenInterval time.Duration
	// ConfigurationRetry is the first retry of a configuration failure; default
	// controller.DefaultConfigurationRetry. Tests shorten it.
	ConfigurationRetry time.Duration
	// SkipControllerNameValidation lets one process run several managers (tests).
	SkipControllerNameValidation bool
}

// Operator is a configured manager and its reconciler, ready to Run.
type Operator struct {
	// Manager is the controller-runtime manager.
	Manager ctrl.Manager
	// Reconciler is the MauticConnection reconciler the manager runs.
	Reconciler *controller.MauticConnectionReconciler

	gracefulShutdown time.Duration
	criticalSection  time.Duration
}

// New builds the manager and registers the controller. Callers check the Mautic timeout against
// the claim with controller.CheckMauticTimeout first (cmd/manager refuses such a flag).
func New(ctx context.Context, restConfig *rest.Config, opts Options) (*Operator, error) {
	if opts.Mautic.Timeout <= 0 {
		opts.Mautic.Timeout = mautic.DefaultTimeout
	}
	if opts.ClaimTTL <= 0 {
		opts.ClaimTTL = controller.DefaultClaimTTL
	}
	if opts.Mautic.Observe == nil {
		opts.Mautic.Observe = controller.ObserveMauticRequest
	}
	store, err := pending.Open(opts.PendingDir)
	if err != nil && store == nil {
		return nil, err
	}
	if err != nil {
		ctrl.Log.WithName("setup").Error(err, "Some pending refresh tokens could not be read", "dir", opts.PendingDir)
	}

	// Claims are judged by the API server's clock, learnt from the Date header of its answers.
	serverClock := apiclock.New(clock.RealClock{})
	restConfig = rest.CopyConfig(restConfig)
	restConfig.Wrap(serverClock.Wrap)

	criticalSection := controller.CriticalSectionTimeout(opts.Mautic.Timeout)
	gracefulShutdown := criticalSection + shutdownMargin
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme.New(),
		Cache:                         cacheOptions(opts.Namespaces, opts.ConnectionSelector),
		Metrics:                       metricsOptions(opts),
		HealthProbeBindAddress:        opts.ProbeAddr,
		PprofBindAddress:              opts.ProfilingAddr,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              leaderElectionID(opts.ConnectionSelector),
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &gracefulShutdown,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(opts.SkipControllerNameValidation)},
	})
	if err != nil {
		return nil, err
	}

	reconciler := &controller.MauticConnectionReconciler{
		Client:        mgr.GetClient(),
		APIReader:     mgr.GetAPIReader(),
		Mautic:        mautic.New(opts.Mautic),
		Clock:         clock.RealClock{},
		ServerClock:   serverClock,
		Recorder:      mgr.GetEventRecorder("mautic-operator"),
		Pending:       store,
		MauticTimeout: opts.Mautic.Timeout,
		ClaimTTL:      opts.ClaimTTL,

		ConfigurationRetry:      opts.ConfigurationRetry,
		RequireCredentialsLabel: opts.RequireCredentialsLabel,
		MinTokenInterval:        opts.MinTokenInterval,
	}
	if err := reconciler.SetupWithManager(ctx, mgr, controller.SetupOptions{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		Namespaces:              opts.Namespaces,
	}); err != nil {
		return nil, err
	}
	// Rotated refresh tokens left by an earlier process of this replica are written as soon as it
	// starts, leader or not: the token is in this replica's directory only, and the leader would
	// otherwise spend the old one once the dead process's claim expires.
	if err := mgr.Add(replayRunnable{reconciler: reconciler}); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return &Operator{Manager: mgr, Reconciler: reconciler, gracefulShutdown: gracefulShutdown, criticalSection: criticalSection}, nil
}

// replayRunnable writes the pending refresh tokens of this replica, retrying with back-off until
// none is left or the manager stops. It runs in every replica, not only the leader.
type replayRunnable struct {
	reconciler *controller.MauticConnectionReconciler
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica replays its own.
func (replayRunnable) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (r replayRunnable) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("replay")
	delay := time.Second
	for {
		err := r.reconciler.ReplayPending(ctx)
		if err == nil {
			return nil
		}
		log.Error(err, "Some pending refresh tokens could not be persisted yet; retrying", "after", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

var _ manager.LeaderElectionRunnable = replayRunnable{}

// GracefulShutdownTimeout is how long the manager waits for reconciles when it stops: longer
// than the critical section of a refresh. A Deployment's terminationGracePeriodSeconds must exceed it.
func (o *Operator) GracefulShutdownTimeout() time.Duration { return o.gracefulShutdown }

// Run runs the manager until ctx ends or the manager fails (a lost leader election), then lets
// every refresh that already claimed its refresh token finish spending and persisting it before
// returning. It returns even when the manager does not: controller-runtime v0.25.2 never returns
// from Start when ctx ends before its caches synced.
func (o *Operator) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- o.Manager.Start(ctx) }()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Before any reconcile, nothing can be in flight: a manager whose caches never synced (no
		// API server, no RBAC) stops at once instead of waiting out the graceful shutdown.
		wait := startupStopTimeout
		if o.Reconciler.Reconciling() {
			wait = o.gracefulShutdown + shutdownMargin
		}
		select {
		case err = <-done:
		case <-time.After(wait):
			err = fmt.Errorf("the manager did not stop within %s of the signal; exiting", wait)
		}
	}
	drain, cancel := context.WithTimeout(context.Background(), o.criticalSection)
	defer cancel()
	if drainErr := o.Reconciler.StopRefreshes(drain); drainErr != nil {
		err = errors.Join(err, fmt.Errorf("stopping: %w", drainErr))
	}
	return err
}

// cacheOptions restricts the manager's caches: Secrets to those the operator writes,
// MauticConnections to this shard's, everything to the watched namespaces, and no managed fields kept.
func cacheOptions(namespaces []string, connections labels.Selector) cache.Options {
	options := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Secret{}: controller.ManagedSecretsCacheOptions()},
	}
	if connections != nil && !connections.Empty() {
		options.ByObject[&authv1alpha1.MauticConnection{}] = cache.ByObject{Label: connections}
	}
	if len(namespaces) > 0 {
		options.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			options.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return options
}

// leaderElectionID names the Lease of a shard: LeaderElectionID for a manager that serves every
// connection, and one Lease per selector otherwise, so that each shard has its own leader.
func leaderElectionID(connections labels.Selector) string {
	if connections == nil || connections.Empty() {
		return LeaderElectionID
	}
	digest := sha256.Sum256([]byte(connections.String()))
	return "shard-" + hex.EncodeToString(digest[:6]) + "." + LeaderElectionID
}

// metricsOptions serves metrics over HTTP/1.1 only, authenticated and authorized when secure.
func metricsOptions(opts Options) metricsserver.Options {
	options := metricsserver.Options{
		BindAddress:   opts.MetricsAddr,
		SecureServing: opts.MetricsSecure,
		// HTTP/2 is off: it is exposed to the HTTP/2 Rapid Reset and Stream Cancellation CVEs.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if opts.MetricsSecure {
		options.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return options
}
