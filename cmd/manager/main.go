// Command manager runs the mautic-operator: the MauticConnection controller, its caches, leader
// election, health probes and metrics. Flags only; the wiring lives in internal/operator.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/memlimit"
	"github.com/mautic-operator/mautic-operator/internal/operator"
	"github.com/mautic-operator/mautic-operator/internal/version"
)

func main() {
	var opts operator.Options
	var watchNamespaces string
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, e.g. :8443; \"0\" disables it.")
	flag.BoolVar(&opts.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.StringVar(&opts.ProfilingAddr, "profiling-bind-address", "0",
		"Address Go's profiles (/debug/pprof/) bind to, e.g. 127.0.0.1:8082; \"0\" disables them. They are unauthenticated: bind to loopback.")
	flag.BoolVar(&opts.LeaderElect, "leader-elect", false, "Elect a leader, so that one replica refreshes tokens at a time.")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; default: the manager's own.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all namespaces.")
	connectionSelector := flag.String("connection-selector", "",
		"Label selector of the MauticConnections this manager serves, e.g. shard=a, to split connections across manager "+
			"deployments; each selector elects its own leader. Empty serves every connection.")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", controller.DefaultMaxConcurrentReconciles,
		"Connections reconciled at once. Reconciles wait on Mautic and the API server, not the CPU; a slow Mautic host holds "+
			"at most --mautic-max-concurrent-per-host of them.")
	kubeAPIQPS := flag.Float64("kube-api-qps", 200, "Queries per second to the Kubernetes API server. A steady connection costs none; "+
		"a new token costs about 4, so this paces how fast thousands of connections get their first token.")
	kubeAPIBurst := flag.Int("kube-api-burst", 400, "Burst of queries to the Kubernetes API server.")
	flag.DurationVar(&opts.Mautic.Timeout, "mautic-timeout", mautic.DefaultTimeout,
		"Timeout of each request to Mautic. A refresh must finish well within the 2-minute refresh claim, so at most 80s.")
	flag.Float64Var(&opts.Mautic.RequestsPerSecond, "mautic-requests-per-second", mautic.DefaultRequestsPerSecond,
		"Requests per second to each Mautic host; a request over the limit is not sent, and its connection is requeued.")
	flag.IntVar(&opts.Mautic.Burst, "mautic-burst", mautic.DefaultBurst, "Burst of requests to each Mautic host.")
	flag.IntVar(&opts.Mautic.MaxConcurrentPerHost, "mautic-max-concurrent-per-host", mautic.DefaultMaxConcurrentPerHost,
		"Requests in flight to each Mautic host:port; more are not sent, and their connections are requeued. Negative for no limit.")
	flag.BoolVar(&opts.Mautic.AllowLinkLocal, "allow-link-local-targets", false,
		"Allow spec.url to resolve to any address, including those of --deny-target-cidrs and cloud metadata host names.")
	denyTargetCIDRs := flag.String("deny-target-cidrs", mautic.DefaultDenyTargetCIDRsKeyword,
		"Comma-separated CIDR ranges and addresses refused as Mautic targets, also behind a proxy; \"default\" is "+
			fmt.Sprint(mautic.DefaultDenyTargetCIDRs())+", e.g. default,10.0.0.0/8.")
	flag.StringVar(&opts.PendingDir, "pending-refresh-token-dir", "",
		"Directory (an emptyDir in the Deployment) that keeps a rotated refresh token until it is persisted in its state Secret, "+
			"across restarts of the container; empty keeps it in memory only.")
	flag.BoolVar(&opts.RequireCredentialsLabel, "require-credentials-label", false,
		"Use a credentials Secret only when it carries the label auth.mautic-operator.dev/credentials=true (multi-tenant clusters).")
	flag.DurationVar(&opts.MinTokenInterval, "min-token-interval", controller.DefaultMinTokenInterval,
		"Least time between two token requests of one connection, whatever its spec or its server says.")
	printVersion := flag.Bool("version", false, "Print the version and commit, then exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *printVersion {
		fmt.Println("manager", version.String())
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if limit, source := memlimit.Configure("/sys/fs/cgroup"); source != "" {
		ctrl.Log.WithName("setup").Info("Go memory limit set", "bytes", limit, "from", source)
	}
	opts.Namespaces = splitList(watchNamespaces)
	if *connectionSelector != "" {
		selector, err := labels.Parse(*connectionSelector)
		if err != nil {
			ctrl.Log.Error(err, "Invalid flags", "flag", "--connection-selector")
			os.Exit(2)
		}
		opts.ConnectionSelector = selector
	}
	cidrs, err := mautic.ParseCIDRList(*denyTargetCIDRs)
	if err != nil {
		ctrl.Log.Error(err, "Invalid flags", "flag", "--deny-target-cidrs")
		os.Exit(2)
	}
	opts.Mautic.DenyTargetCIDRs = cidrs
	if err := controller.CheckMauticTimeout(opts.Mautic.Timeout, controller.DefaultClaimTTL); err != nil {
		ctrl.Log.Error(err, "Invalid flags")
		os.Exit(2)
	}

	if err := run(ctrl.SetupSignalHandler(), opts, float32(*kubeAPIQPS), *kubeAPIBurst); err != nil {
		ctrl.Log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, opts operator.Options, qps float32, burst int) error {
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	restConfig.QPS, restConfig.Burst = qps, burst
	op, err := operator.New(ctx, restConfig, opts)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "version", version.Version, "commit", version.Commit,
		"watchNamespaces", opts.Namespaces, "leaderElection", opts.LeaderElect,
		"gracefulShutdownTimeout", op.GracefulShutdownTimeout(), "pendingRefreshTokenDir", opts.PendingDir)
	return op.Run(ctx)
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
