package node

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mautic-operator/mautic-operator/test/node/answers"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// accessTokenLifetime is short so that the default renewal (a third of the lifetime left, 15 s
	// before expiry) comes every 30 s, leaving the kubelet 15 s to bring each new token into the
	// workloads' volumes.
	accessTokenLifetime = 45 * time.Second
	// rotations is how many token renewals each workload must go through without a failure.
	rotations = 3
)

// scenario is what both installs go through once the operator runs.
type scenario struct {
	apps      string // the namespace of Mautic, the connections and the workloads
	site      *mauticSite
	cc, ac    *connection
	watch     *connectionWatch
	workloads []*workload
}

// TestHelm installs the operator with the Helm chart, two replicas, from the image `make image`
// built; config/samples, edited only for the site, become Ready; workloads mounting the token Secrets keep calling Mautic without a failure across three
// rotations and a rollout restart during an AuthorizationCode refresh; metrics are scraped with
// a ServiceAccount token; the kubelet's Secret volume delay is measured; a `helm upgrade` to a
// new image and chart version keeps every connection Ready and asks Mautic for no token that was
// not due.
func TestHelm(t *testing.T) {
	b := requireBed(t)
	op := b.installWithHelm(t)
	b.checkManagerPods(t, op, managerRepository+":"+managerTag)
	s := b.startScenario(t, "node-helm-apps")
	b.applySamples(t, "node-helm-samples", s.apps, s.site)
	b.waitRotations(t, s, rotations)
	b.restartDuringRefresh(t, op, s.site, s.ac)
	b.scrapeMetrics(t, op, s.apps)
	b.measurePropagation(t, s)
	b.upgradeWithHelm(t, op, s)
	b.finishScenario(t, s)
}

// TestInstaller does the same with dist/install.yaml (rendered by `make build-installer`) scaled
// to two replicas, without the Helm-only upgrade and the measurement.
func TestInstaller(t *testing.T) {
	b := requireBed(t)
	op := b.installWithInstaller(t)
	b.checkManagerPods(t, op, managerRepository+":"+managerTag)
	s := b.startScenario(t, "node-installer-apps")
	b.waitRotations(t, s, rotations)
	b.restartDuringRefresh(t, op, s.site, s.ac)
	b.scrapeMetrics(t, op, s.apps)
	b.finishScenario(t, s)
}

// startScenario deploys the Mautic test server, the two connections and a workload for each
// connection's token Secret in the namespace apps, and waits for the workloads to run.
func (b *bed) startScenario(t *testing.T, apps string) *scenario {
	t.Helper()
	b.createNamespace(t, apps)
	s := &scenario{apps: apps}
	s.site = b.deployMautic(t, apps, accessTokenLifetime)
	b.ensureProbeSecret(t, apps)
	s.cc, s.ac = b.applyConnections(t, apps, s.site)
	s.watch = b.watchConnections(t, s.cc, s.ac)
	for _, c := range []*connection{s.cc, s.ac} {
		s.workloads = append(s.workloads, b.deployWorkload(t, apps, c.key.Name+"-workload", c.tokenSecret, s.site))
	}
	for _, w := range s.workloads {
		b.waitDeploymentReady(t, apps, w.name, 1)
	}
	return s
}

// waitRotations waits until every workload has read n tokens after its first one from its
// mounted Secret.
func (b *bed) waitRotations(t *testing.T, s *scenario, n int) {
	t.Helper()
	start := time.Now()
	for _, w := range s.workloads {
		b.eventually(t, time.Duration(n+2)*accessTokenLifetime, fmt.Sprintf("the workload %s to read %d new tokens", w.name, n), func() (bool, string) {
			st := b.stats(t, w)
			return len(st.TokenChanges) >= n+1, fmt.Sprintf("%d tokens read, %d successes, %d failures (last: %s)",
				len(st.TokenChanges), st.Successes, st.Failures, st.LastFailure)
		})
	}
	for _, w := range s.workloads {
		st := b.stats(t, w)
		if st.Failures != 0 {
			t.Errorf("the workload %s failed %d of %d requests across the rotations; last: %s", w.name, st.Failures, st.Successes+st.Failures, st.LastFailure)
		}
		t.Logf("workload %s: %d tokens read from its volume, %d requests succeeded, %d failed", w.name, len(st.TokenChanges), st.Successes, st.Failures)
	}
	t.Logf("%d rotations seen by every workload in %s", n, time.Since(start).Round(time.Second))
}

// finishScenario: no workload request failed and no connection was ever seen not Ready.
func (b *bed) finishScenario(t *testing.T, s *scenario) {
	t.Helper()
	for _, w := range s.workloads {
		st := b.stats(t, w)
		if st.Failures != 0 {
			t.Errorf("the workload %s failed %d of %d requests; last: %s", w.name, st.Failures, st.Successes+st.Failures, st.LastFailure)
		}
		if st.Successes == 0 {
			t.Errorf("the workload %s made no successful request", w.name)
		}
		t.Logf("workload %s in total: %d tokens read, %d requests succeeded, %d failed", w.name, len(st.TokenChanges), st.Successes, st.Failures)
	}
	if seen := s.watch.notReadySeen(); len(seen) > 0 {
		t.Errorf("connections were seen not Ready %d times, first: %s", len(seen), seen[0])
	}
	if c := s.site.counters(t); c.ReusedRefreshTokens != 0 {
		t.Errorf("Mautic saw %d rotated refresh tokens presented again", c.ReusedRefreshTokens)
	}
}

// upgradeWithHelm upgrades the release to a new chart version and a new image, both built now
// from the same sources with a bumped version, and checks that the managers run the new image,
// every connection stays Ready, and each token request Mautic received meanwhile was a renewal
// that was due: one request per refresh, none before the renewal time planned before it.
func (b *bed) upgradeWithHelm(t *testing.T, op *operatorInstall, s *scenario) {
	t.Helper()
	const newTag, newVersion, newChart = "node-2", "v0.0.2-node.2", "0.2.0-node.2"
	must(t, b.buildImage("./cmd/manager", managerRepository+":"+newTag, newVersion, "manager-2"), "building the new manager image")
	chartOut := filepath.Join(b.root, "bin", "node")
	out, err := b.output(b.helm, "package", filepath.Join(b.root, "charts", "mautic-operator"), "--destination", chartOut,
		"--version", newChart, "--app-version", newVersion)
	must(t, err, "packaging the new chart version: "+out)

	// Counting starts at a moment when no refresh is under way or about to start, so that no
	// refresh is seen in the window whose token request Mautic counted before it.
	b.eventually(t, 2*accessTokenLifetime, "a moment without a refresh under way", func() (bool, string) {
		return s.watch.quietMoment(time.Now(), 5*time.Second)
	})
	before := s.site.counters(t)
	start := time.Now()
	out, err = b.helmCmd("upgrade", "mautic-operator", filepath.Join(chartOut, "mautic-operator-"+newChart+".tgz"),
		"--namespace", op.namespace, "--reuse-values", "--set", "image.tag="+newTag, "--wait", "--timeout", "4m")
	if err != nil {
		t.Fatalf("helm upgrade: %v\n%s\n%s", err, out, b.podsReport(op.namespace))
	}
	b.checkManagerPods(t, op, managerRepository+":"+newTag)
	deploy := &appsv1.Deployment{}
	must(t, b.client.Get(t.Context(), client.ObjectKey{Namespace: op.namespace, Name: op.deployment}, deploy), "reading the manager Deployment")
	if got := deploy.Labels["helm.sh/chart"]; got != "mautic-operator-"+newChart {
		t.Errorf("the manager Deployment is labelled helm.sh/chart=%s, want mautic-operator-%s", got, newChart)
	}
	leader := b.leaderPod(t, op)
	// Give the new leader the time to act on every connection, wrongly or not, before counting.
	time.Sleep(10 * time.Second)
	upgraded := time.Now()

	// Every token request must show as a refresh in the connection's status.
	var after answers.Counters
	b.eventually(t, 30*time.Second, "each token request of the upgrade to show as a refresh", func() (bool, string) {
		after = s.site.counters(t)
		for _, c := range []*connection{s.cc, s.ac} {
			requests := after.TokenRequestsByClient[c.client.ID] - before.TokenRequestsByClient[c.client.ID]
			if refreshes := countFor(s.watch.refreshesBetween(start, time.Now()), c.key); requests != refreshes {
				return false, fmt.Sprintf("%s: %d token requests, %d refreshes", c.key, requests, refreshes)
			}
		}
		return true, ""
	})
	requests := 0
	for _, c := range []*connection{s.cc, s.ac} {
		requests += after.TokenRequestsByClient[c.client.ID] - before.TokenRequestsByClient[c.client.ID]
		b.waitConnectionReady(t, c.key)
	}
	events := s.watch.refreshesBetween(start, time.Now())
	for _, ev := range events {
		if ev.at.Before(ev.plannedAt.Add(-time.Second)) {
			t.Errorf("%s was refreshed at %s, before its renewal time %s: a token request that was not due",
				ev.key, ev.at.Format(time.RFC3339), ev.plannedAt.Format(time.RFC3339))
		}
	}
	t.Logf("helm upgrade to chart %s and image %s: rollout and new leader %s in %s; %d token requests meanwhile, each a due renewal",
		newChart, newTag, leader, upgraded.Sub(start).Round(time.Second), requests)
}

// countFor counts the refreshes of key.
func countFor(events []refreshEvent, key client.ObjectKey) int {
	n := 0
	for _, ev := range events {
		if ev.key == key {
			n++
		}
	}
	return n
}
