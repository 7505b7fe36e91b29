package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// namespace holds the connections and the leader election Lease.
	namespace = "chaos"
	// readyTimeout bounds the first Ready of every connection.
	readyTimeout = 90 * time.Second
	// settleTimeout bounds the wait, after the last event, for every chain to be intact or its
	// loss recorded.
	settleTimeout = 45 * time.Second
	// pendingSettleTimeout replaces settleTimeout while a rotated token waits in the pending
	// directory: longer than a dead manager's refresh claim (2 minutes), so that a token that is
	// never written back shows as lost.
	pendingSettleTimeout = 150 * time.Second
	// brokenFor is how long a chain must have been broken, at the end, to count as lost although
	// its connection is not Stalled yet (a dead manager's claim delays the refresh that would find out).
	brokenFor = 20 * time.Second
	// quietAfterChaos is how long the run waits after the last event before it settles: long
	// enough for the retry after an ambiguous refresh, Mautic's refusal and the stall.
	quietAfterChaos = 10 * time.Second
)

// TestChaos runs the manager binary through the events of driver_test.go and asserts that no
// refresh token is lost but those the protocol cannot keep (Mautic rotated, its answer never
// arrived) and those a SIGKILL took between Mautic's answer and the first durable copy.
func TestChaos(t *testing.T) {
	s := requireSuite(t)
	g := NewWithT(t)
	cfg := s.cfg
	ctx := t.Context()
	t.Logf("chaos: seed %d (CHAOS_SEED=%d repeats the schedule), %s of events, %d connections, %d managers, work dir %s",
		cfg.seed, cfg.seed, cfg.duration, cfg.connections, cfg.managers, s.workDir)
	machineBefore := readMachine()

	conns, err := createConnections(ctx, s, cfg.connections)
	g.Expect(err).NotTo(HaveOccurred())
	ms, err := newManagers(s, cfg.managers, namespace, cfg.sharedPending)
	g.Expect(err).NotTo(HaveOccurred())
	tr := &tracker{env: s.env, namespace: namespace, pendingDirs: ms.pendingDirs, conns: conns}

	runCtx, stopManagers := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		_ = resumeProcess(s.apiServerPid)
		s.env.Mautic.ClearFaults()
		stopManagers()
		ms.wait()
		if t.Failed() {
			t.Logf("manager logs: %s/manager-*.log", s.workDir)
		}
	}()
	ms.run(runCtx)

	g.Expect(waitAllReady(ctx, s, conns)).To(Succeed(), "every connection Ready before the chaos")
	mautic := s.env.Mautic
	rotationsBefore, reusedBefore := mautic.RefreshTokensIssued(), mautic.ReusedRefreshTokens()
	grantsBefore := mautic.TokenRequestsByGrant("refresh_token")

	samplerCtx, stopSampler := context.WithCancel(context.WithoutCancel(ctx))
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); tr.run(samplerCtx) }()
	defer func() { stopSampler(); <-samplerDone }()

	d := &driver{s: s, rng: rand.New(rand.NewPCG(uint64(cfg.seed), 1)), managers: ms, tracker: tr, deadHolders: map[string]bool{}, kinds: cfg.kinds} //nolint:gosec // a reproducible schedule
	chaosStart := time.Now()
	d.drive(ctx, t.Logf)
	chaosEnd := time.Now()
	_ = resumeProcess(s.apiServerPid)
	mautic.ClearFaults()
	mautic.SetSlowDelay(heldDelay)
	// The last event's consequences (a retry after an ambiguous refresh, its refusal, the stall)
	// take a few seconds to show: let them, so that every reuse they cause meets its loss.
	sleep(ctx, quietAfterChaos)

	settled := false
	for {
		var onPending bool
		settled, onPending = tr.settleState(brokenFor)
		limit := settleTimeout
		if onPending {
			limit = pendingSettleTimeout
		}
		if settled || time.Since(chaosEnd) > limit || ctx.Err() != nil {
			break
		}
		sleep(ctx, 250*time.Millisecond)
	}
	for _, p := range ms.running() {
		_, _ = ms.scrape(ctx, p)
	}
	pendingKept, unresolved := tr.finish(brokenFor)
	stopSampler()
	<-samplerDone

	r := &runReport{
		cfg:          cfg,
		machine:      machineBefore,
		machineAfter: readMachine(),
		chaos:        chaosEnd.Sub(chaosStart),
		settle:       time.Since(chaosEnd),
		settled:      settled,
		rotations:    mautic.RefreshTokensIssued() - rotationsBefore,
		grants:       mautic.TokenRequestsByGrant("refresh_token") - grantsBefore,
		reused:       mautic.ReusedRefreshTokens() - reusedBefore,
		tracker:      tr,
		driver:       d,
		window:       ms.window(),
		processes:    ms.processCount(),
		crashes:      ms.crashes(),
		pendingKept:  pendingKept,
		unresolved:   unresolved,
		panics:       panicLogs(s.workDir),
	}
	report := r.markdown()
	t.Log("\n" + report)
	if cfg.reportPath != "" {
		g.Expect(os.WriteFile(cfg.reportPath, []byte(report), 0o600)).To(Succeed())
		t.Logf("chaos: report written to %s", cfg.reportPath)
	}

	// Every kind of event ran.
	for _, k := range d.kinds {
		g.Expect(r.eventsOf(k)).NotTo(BeEmpty(), "events of kind %s", k.name)
	}
	// Only the protocol and a SIGKILL inside the window lose a refresh token.
	g.Expect(r.violations()).To(BeEmpty(), "refresh tokens lost that the operator must keep")
	for _, k := range d.kinds {
		if k.policy == protocolLoss {
			g.Expect(r.lossesOf(k)).To(BeNumerically("<=", r.faultsMet(k)),
				"%s: at most one token lost per fault that met a refresh", k.name)
		}
	}
	// A spent token is sent again only to learn that a lost chain is lost, at most once per loss
	// that only a refusal reveals (not after a 2xx answer without a refresh token, which stalls and
	// sends nothing): never to spend a valid token twice.
	g.Expect(r.reused).To(BeNumerically("<=", r.lossesRevealedByRefusal()), "refresh tokens spent again")
	g.Expect(r.pendingKept).To(BeEmpty(), "rotated refresh tokens still only in the pending directory %s after the run", pendingSettleTimeout)
	g.Expect(tr.anomalies).To(BeEmpty(), "statuses that should never happen")
	g.Expect(r.panics).To(BeEmpty(), "manager logs with a panic")
	g.Expect(r.rotations).To(BeNumerically(">=", cfg.minRotations), "rotations (CHAOS_MIN_ROTATIONS)")
}

// createConnections creates the CA Secret and count AuthorizationCode connections, each with its
// own Mautic client and a seed refresh token in its credentials Secret.
func createConnections(ctx context.Context, s *suite, count int) ([]*connection, error) {
	c := s.env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	ca := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: localenv.CASecretName, Namespace: namespace},
		Data:       map[string][]byte{authv1alpha1.CACertKey: s.env.Mautic.CACertPEM()},
	}
	if err := c.Create(ctx, ca); err != nil {
		return nil, err
	}
	var conns []*connection
	for i := range count {
		name := fmt.Sprintf("conn-%02d", i+1)
		app := s.env.Mautic.NewClient("chaos "+name, false)
		conn := &connection{name: name, credentials: name + "-credentials", app: app}
		credentials := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: conn.credentials, Namespace: namespace},
			Data: map[string][]byte{
				authv1alpha1.ClientIDKey:     []byte(app.ID),
				authv1alpha1.ClientSecretKey: []byte(app.Secret),
				authv1alpha1.RefreshTokenKey: []byte(s.env.Mautic.IssueRefreshToken(app.ID)),
			},
		}
		if err := c.Create(ctx, credentials); err != nil {
			return nil, err
		}
		mc := &authv1alpha1.MauticConnection{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: authv1alpha1.MauticConnectionSpec{
				URL:                  s.env.Mautic.URL(),
				Grant:                authv1alpha1.GrantAuthorizationCode,
				CredentialsSecretRef: authv1alpha1.SecretReference{Name: conn.credentials},
				TLS:                  &authv1alpha1.TLSSpec{CASecretRef: &authv1alpha1.SecretReference{Name: localenv.CASecretName}},
				Refresh:              &authv1alpha1.RefreshSpec{RenewBeforePercentage: ptr.To[int32](50)},
			},
		}
		if err := c.Create(ctx, mc); err != nil {
			return nil, err
		}
		conn.uid = mc.UID
		conns = append(conns, conn)
	}
	return conns, nil
}

// waitAllReady waits until every connection is Ready, failing early on a Stalled one.
func waitAllReady(ctx context.Context, s *suite, conns []*connection) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		list := &authv1alpha1.MauticConnectionList{}
		if err := s.env.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return err
		}
		ready := 0
		for i := range list.Items {
			conn := &list.Items[i]
			if stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition); stalled != nil && stalled.Status == metav1.ConditionTrue {
				return fmt.Errorf("%s is Stalled before any chaos: %s: %s", conn.Name, stalled.Reason, stalled.Message)
			}
			if apimeta.IsStatusConditionTrue(conn.Status.Conditions, authv1alpha1.ReadyCondition) {
				ready++
			}
		}
		if ready == len(conns) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d connections Ready within %s", ready, len(conns), readyTimeout)
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

// panicLogs returns the manager logs that hold a Go panic.
func panicLogs(workDir string) []string {
	paths, _ := filepath.Glob(filepath.Join(workDir, "manager-*.log"))
	var found []string
	for _, path := range paths {
		data, err := os.ReadFile(path) //nolint:gosec // the suite's own logs
		if err == nil && bytes.Contains(data, []byte("panic:")) {
			found = append(found, filepath.Base(path)+": "+firstLineWith(string(data), "panic"))
		}
	}
	return found
}

func firstLineWith(text, word string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, word) {
			return line
		}
	}
	return ""
}
