// Command manager runs the mautic-operator: the MauticConnection controller, its caches, leader
// election, health probes and metrics. Flags and wiring only; the logic lives in internal/.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
}

// options are the manager's flags.
type options struct {
	metricsAddr             string
	metricsSecure           bool
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	watchNamespaces         string
	maxConcurrentReconciles int
	kubeAPIQPS              float64
	kubeAPIBurst            int
	mauticTimeout           time.Duration
	mauticRequestsPerSecond float64
	mauticBurst             int
	allowLinkLocalTargets   bool
}

func main() {
	var opts options
	flag.StringVar(&opts.metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, e.g. :8443; \"0\" disables it.")
	flag.BoolVar(&opts.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	flag.StringVar(&opts.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&opts.leaderElect, "leader-elect", false, "Elect a leader, so that one replica refreshes tokens at a time.")
	flag.StringVar(&opts.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; default: the manager's own.")
	flag.StringVar(&opts.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all namespaces.")
	flag.IntVar(&opts.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "Connections reconciled at once.")
	flag.Float64Var(&opts.kubeAPIQPS, "kube-api-qps", 20, "Queries per second to the Kubernetes API server.")
	flag.IntVar(&opts.kubeAPIBurst, "kube-api-burst", 40, "Burst of queries to the Kubernetes API server.")
	flag.DurationVar(&opts.mauticTimeout, "mautic-timeout", mautic.DefaultTimeout, "Timeout of each request to Mautic.")
	flag.Float64Var(&opts.mauticRequestsPerSecond, "mautic-requests-per-second", mautic.DefaultRequestsPerSecond, "Requests per second to each Mautic host.")
	flag.IntVar(&opts.mauticBurst, "mautic-burst", mautic.DefaultBurst, "Burst of requests to each Mautic host.")
	flag.BoolVar(&opts.allowLinkLocalTargets, "allow-link-local-targets", false, "Allow spec.url to resolve to link-local and cloud metadata addresses.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options) error {
	log := ctrl.Log.WithName("setup")
	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS = float32(opts.kubeAPIQPS)
	restConfig.Burst = opts.kubeAPIBurst

	namespaces := splitList(opts.watchNamespaces)
	cacheOptions := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&corev1.Secret{}: controller.ManagedSecretsCacheOptions()},
	}
	if len(namespaces) > 0 {
		cacheOptions.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			cacheOptions.DefaultNamespaces[ns] = cache.Config{}
		}
	}

	metricsOptions := metricsserver.Options{
		BindAddress:   opts.metricsAddr,
		SecureServing: opts.metricsSecure,
		// HTTP/2 is off: it is exposed to the HTTP/2 Rapid Reset and Stream Cancellation CVEs.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if opts.metricsSecure {
		metricsOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOptions,
		Metrics:                       metricsOptions,
		HealthProbeBindAddress:        opts.probeAddr,
		LeaderElection:                opts.leaderElect,
		LeaderElectionID:              "mautic-operator.auth.mautic-operator.dev",
		LeaderElectionNamespace:       opts.leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return err
	}

	reconciler := &controller.MauticConnectionReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Mautic: mautic.New(mautic.Options{
			Timeout:           opts.mauticTimeout,
			RequestsPerSecond: opts.mauticRequestsPerSecond,
			Burst:             opts.mauticBurst,
			AllowLinkLocal:    opts.allowLinkLocalTargets,
			Observe:           controller.ObserveTokenRequest,
		}),
		Clock:    clock.RealClock{},
		Recorder: mgr.GetEventRecorder("mautic-operator"),
	}
	if err := reconciler.SetupWithManager(ctx, mgr, controller.SetupOptions{
		MaxConcurrentReconciles: opts.maxConcurrentReconciles,
		Namespaces:              namespaces,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	log.Info("Starting manager", "watchNamespaces", namespaces, "leaderElection", opts.leaderElect)
	return mgr.Start(ctx)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(value string) []string {
	var items []string
	for _, item := range strings.Split(value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}
