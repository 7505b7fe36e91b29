package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
)

// lossPolicy says which losses an event may cause.
type lossPolicy int

const (
	// mustNotLose: the operator must keep every refresh token.
	mustNotLose lossPolicy = iota
	// protocolLoss: Mautic rotated and its answer never reached the client; nobody can keep
	// the new token. At most one loss per fault that met a refresh.
	protocolLoss
	// sigkillLoss: a SIGKILL between Mautic's rotation and the first durable copy of the new
	// token loses it; a SIGKILL anywhere else must not.
	sigkillLoss
)

// kind is a kind of chaos event.
type kind struct {
	name        string
	description string
	policy      lossPolicy
	run         func(d *driver, ctx context.Context, e *event)
}

// killClass says where a SIGKILL found a connection's refresh.
type killClass int

const (
	// killClaimOnly: the refresh had claimed the token, Mautic had not rotated it.
	killClaimOnly killClass = iota + 1
	// killRotatedPending: Mautic had rotated; the new token was in the pending directory.
	killRotatedPending
	// killRotatedNotDurable: Mautic had rotated; the new token was nowhere durable yet.
	killRotatedNotDurable
)

// event is one chaos event of the run.
type event struct {
	kind       *kind
	start, end time.Time
	detail     string
	// faultsMet counts token requests that met the injected fault.
	faultsMet int
	// killClasses are, for a SIGKILL, the refreshes it interrupted, by connection.
	killClasses map[string]killClass
	// losses counts the refresh tokens lost to the event.
	losses int
}

// driver runs the events.
type driver struct {
	s        *suite
	rng      *rand.Rand
	managers *managers
	tracker  *tracker
	// deadHolders are the claim holders of processes already SIGKILLed.
	deadHolders map[string]bool
	// shutdowns are the SIGTERM-to-exit durations.
	shutdowns []time.Duration
	// forcedKills counts SIGTERMs that had to be followed by SIGKILL after stopTimeout.
	forcedKills int
	// notMet counts fault events whose fault met no token request in time.
	notMet int
	// kinds are the kinds of event to run (CHAOS_KINDS), all by default.
	kinds []*kind
}

// heldDelay is how long a held request waits: less than --mautic-timeout.
const heldDelay = 2 * time.Second

// timeoutDelay is how long a timed-out request is held: more than --mautic-timeout.
const timeoutDelay = mauticTimeout + 2*time.Second

// allKinds are every kind of event, in the order of the report.
var allKinds = []*kind{
	{name: "sigterm", description: "SIGTERM to the leader", policy: mustNotLose, run: (*driver).sigterm},
	{name: "sigterm-held", description: "SIGTERM to the leader while Mautic holds its token request 2s", policy: mustNotLose,
		run: (*driver).sigtermHeld},
	{name: "sigkill", description: "SIGKILL to the leader's process group at a random moment", policy: sigkillLoss, run: (*driver).sigkill},
	{name: "sigkill-in-refresh", description: "SIGKILL to the leader's process group 0-10ms after Mautic received a token request",
		policy: sigkillLoss, run: (*driver).sigkillInRefresh},
	{name: "sigkill-after-pending", description: "SIGKILL to the leader's process group as soon as a rotated token appears in the pending directory",
		policy: sigkillLoss, run: (*driver).sigkillAfterPending},
	{name: "apiserver-frozen", description: "kube-apiserver frozen (SIGSTOP), then resumed", policy: mustNotLose,
		run: (*driver).freezeAPIServer},
	{name: "mautic-error", description: "3 token requests answered 500, 503, an HTML page or malformed JSON (nothing rotated)",
		policy: mustNotLose, run: (*driver).mauticError},
	{name: "mautic-slow", description: "2 token requests held 2s before the grant (less than --mautic-timeout)", policy: mustNotLose,
		run: faultRun(mautictest.FaultSlow, 2, heldDelay)},
	{name: "mautic-timeout", description: "a token request held 7s before the grant: the client gives up at 5s, nothing rotated",
		policy: mustNotLose, run: faultRun(mautictest.FaultSlow, 1, timeoutDelay)},
	{name: "mautic-unusable", description: "2 refreshes answered 200 text/plain holding the new refresh token", policy: mustNotLose,
		run: faultRun(mautictest.FaultUnusableAnswer, 2, 0)},
	{name: "mautic-fractional", description: "3 refreshes answered with a fractional expires_in (3.5)", policy: mustNotLose,
		run: faultRun(mautictest.FaultFractionalExpiresIn, 3, 0)},
	{name: "mautic-random", description: "5s of random faults on 30% of token requests (the loss-free ones above)", policy: mustNotLose,
		run: (*driver).mauticRandom},
	{name: "mautic-drop", description: "a connection dropped after Mautic rotated", policy: protocolLoss,
		run: faultRun(mautictest.FaultDropAfterRead, 1, 0)},
	{name: "mautic-answer-timeout", description: "Mautic rotated, then held its answer 7s: the client gave up at 5s", policy: protocolLoss,
		run: faultRun(mautictest.FaultSlowThenAnswer, 1, timeoutDelay)},
	{name: "mautic-unusable-notoken", description: `Mautic rotated, then answered 200 {"unexpected":true}`, policy: protocolLoss,
		run: faultRun(mautictest.FaultUnusableAnswerNoToken, 1, 0)},
}

// drive runs events until the duration is over and the first cycle, which has every kind once,
// is complete. Kinds come in cycles, each a random order of every kind (of d.kinds).
func (d *driver) drive(ctx context.Context, logf func(string, ...any)) {
	deadline := time.Now().Add(d.s.cfg.duration)
	var cycle []*kind
	cycles := 0
	for ctx.Err() == nil {
		if len(cycle) == 0 {
			if cycles > 0 && !time.Now().Before(deadline) {
				return
			}
			cycles++
			cycle = make([]*kind, len(d.kinds))
			for i, j := range d.rng.Perm(len(d.kinds)) {
				cycle[i] = d.kinds[j]
			}
		}
		if cycles > 1 && !time.Now().Before(deadline) {
			return
		}
		k := cycle[0]
		cycle = cycle[1:]
		sleep(ctx, 500*time.Millisecond+time.Duration(d.rng.Int64N(int64(1500*time.Millisecond))))
		e := &event{kind: k, start: time.Now()}
		d.tracker.addEvent(e)
		k.run(d, ctx, e)
		e.end = time.Now()
		logf("event %-24s %6.1fs  %s", k.name, e.end.Sub(e.start).Seconds(), e.detail)
	}
}

// target returns the leader, or any running manager when none leads right now.
func (d *driver) target(ctx context.Context) *process {
	if p := d.managers.waitLeader(ctx, 20*time.Second); p != nil {
		return p
	}
	running := d.managers.running()
	if len(running) == 0 {
		return nil
	}
	return running[d.rng.IntN(len(running))]
}

// sigterm stops the leader gracefully; its supervisor starts it again.
func (d *driver) sigterm(ctx context.Context, e *event) {
	p := d.target(ctx)
	if p == nil {
		e.detail = "no manager running"
		return
	}
	took, err := d.managers.terminate(ctx, p)
	d.shutdowns = append(d.shutdowns, took)
	if err != nil {
		d.forcedKills++
	}
	e.detail = fmt.Sprintf("%s exited %.1fs after SIGTERM", p.name(), took.Seconds())
	d.managers.waitLeader(ctx, 30*time.Second)
}

// sigtermHeld holds the next token request 2s (the grant done at once, or only after the
// wait), and SIGTERMs the leader while it is held: the manager must wait for the answer and
// persist the rotated token before it exits.
func (d *driver) sigtermHeld(ctx context.Context, e *event) {
	fault := mautictest.FaultSlowThenAnswer
	if d.rng.IntN(2) == 0 {
		fault = mautictest.FaultSlow
	}
	p := d.target(ctx)
	if p == nil {
		e.detail = "no manager running"
		return
	}
	mautic := d.s.env.Mautic
	mautic.SetSlowDelay(heldDelay)
	before := mautic.TokenRequests()
	mautic.InjectFault(fault, 1)
	if !waitFor(ctx, 20*time.Second, func() bool { return mautic.TokenRequests() > before }) {
		mautic.ClearFaults()
		d.notMet++
		e.detail = "no token request came"
		return
	}
	e.faultsMet = 1
	sleep(ctx, time.Duration(d.rng.Int64N(int64(heldDelay/2))))
	took, err := d.managers.terminate(ctx, p)
	mautic.ClearFaults()
	d.shutdowns = append(d.shutdowns, took)
	if err != nil {
		d.forcedKills++
	}
	e.detail = fmt.Sprintf("%s held, %s exited %.1fs after SIGTERM", fault, p.name(), took.Seconds())
	d.managers.waitLeader(ctx, 30*time.Second)
}

// sigkill kills the leader's process group, then looks at what it interrupted: the state
// Secrets it had claimed, whether Mautic had rotated them, and whether the new token was in the
// pending directory.
func (d *driver) sigkill(ctx context.Context, e *event) {
	p := d.target(ctx)
	if p == nil {
		e.detail = "no manager running"
		return
	}
	_, _ = d.managers.scrape(ctx, p)
	d.killAndClassify(ctx, e, p, "")
}

// sigkillInRefresh kills the leader's process group a moment after Mautic received a token
// request: in the middle of a refresh, often between Mautic's rotation and the first durable copy
// of the new token (the window a SIGKILL may lose a token in), sometimes just after it.
func (d *driver) sigkillInRefresh(ctx context.Context, e *event) {
	p := d.target(ctx)
	if p == nil {
		e.detail = "no manager running"
		return
	}
	// Scraped now: a scrape takes milliseconds, the window less.
	_, _ = d.managers.scrape(ctx, p)
	mautic := d.s.env.Mautic
	before := mautic.TokenRequests()
	deadline := time.Now().Add(20 * time.Second)
	for mautic.TokenRequests() == before {
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.detail = "no token request came"
			d.notMet++
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
	delay := time.Duration(d.rng.Int64N(int64(10 * time.Millisecond)))
	time.Sleep(delay)
	d.killAndClassify(ctx, e, p, fmt.Sprintf(" %.1fms after a token request arrived", float64(delay)/float64(time.Millisecond)))
}

// sigkillAfterPending kills the leader's process group the moment a rotated refresh token
// appears in the pending directory, usually before the state Secret write that follows it: the
// token must then be written back from the directory, not lost.
func (d *driver) sigkillAfterPending(ctx context.Context, e *event) {
	p := d.target(ctx)
	if p == nil {
		e.detail = "no manager running"
		return
	}
	_, _ = d.managers.scrape(ctx, p)
	dir := p.slot.pendingDir
	seen := pendingFiles(dir)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if changed := pendingFiles(dir); changedFile(seen, changed) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.detail = "no rotated token appeared in the pending directory"
			d.notMet++
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
	d.killAndClassify(ctx, e, p, " when a rotated token appeared in the pending dir")
}

// pendingFiles returns the modification times of the pending directory's token files.
func pendingFiles(dir string) map[string]time.Time {
	files := map[string]time.Time{}
	entries, _ := os.ReadDir(dir)
	for _, entry := range entries {
		if !strings.HasSuffix(entry.Name(), ".pending.json") {
			continue
		}
		if info, err := entry.Info(); err == nil {
			files[entry.Name()] = info.ModTime()
		}
	}
	return files
}

// changedFile reports whether now has a file that before did not have, or had with another time.
func changedFile(before, now map[string]time.Time) bool {
	for name, modTime := range now {
		if old, ok := before[name]; !ok || !old.Equal(modTime) {
			return true
		}
	}
	return false
}

// killAndClassify SIGKILLs p's process group, records the refreshes it interrupted and waits
// for a leader.
func (d *driver) killAndClassify(ctx context.Context, e *event, p *process, when string) {
	d.managers.kill(p)
	e.killClasses = d.interrupted(ctx, p)
	counts := map[killClass]int{}
	for _, class := range e.killClasses {
		counts[class]++
	}
	killedAt := time.Now()
	e.detail = fmt.Sprintf("%s killed%s; refreshes interrupted: %d claimed only, %d rotated and in the pending dir, %d rotated and not durable",
		p.name(), when, counts[killClaimOnly], counts[killRotatedPending], counts[killRotatedNotDurable])
	leader := d.managers.waitLeader(ctx, 30*time.Second)
	switch {
	case leader == nil:
		e.detail += "; no leader within 30s"
	case leader.started.Before(killedAt):
		e.detail += fmt.Sprintf("; next leader %s, started before the kill", leader.name())
	default:
		e.detail += fmt.Sprintf("; next leader %s, started after the kill", leader.name())
	}
}

// interrupted classifies the refreshes the killed process p had in flight: claims on state
// Secrets by a holder not seen dead before, recorded since p started. A rotated token counts as
// durable when the pending directory holds, for the token the state Secret still holds, a new
// token that Mautic accepts.
func (d *driver) interrupted(ctx context.Context, p *process) map[string]killClass {
	secrets := &corev1.SecretList{}
	waitFor(ctx, 10*time.Second, func() bool {
		readCtx, cancel := context.WithTimeout(ctx, readTimeout)
		defer cancel()
		return d.s.env.Client.List(readCtx, secrets, client.InNamespace(d.tracker.namespace)) == nil
	})
	pending := readPending(d.managers.pendingDirs...)
	mautic := d.s.env.Mautic
	classes := map[string]killClass{}
	var holders []string
	for i := range secrets.Items {
		state := &secrets.Items[i]
		connection, ok := stateConnection(state)
		if !ok {
			continue
		}
		claim, claimed := refreshstate.ClaimOf(state)
		if !claimed || d.deadHolders[claim.Holder] || claim.RecordedAt.Before(p.started.Add(-time.Second)) {
			continue
		}
		holders = append(holders, claim.Holder)
		stored := refreshstate.RefreshToken(state)
		owner := metav1.GetControllerOf(state)
		var entries []pendingEntry
		if owner != nil {
			entries = pending[string(owner.UID)]
		}
		switch {
		case mautic.RefreshTokenValid(stored):
			classes[connection] = killClaimOnly
		case keeps(entries, refreshstate.Digest(stored), mautic.RefreshTokenValid):
			classes[connection] = killRotatedPending
		default:
			classes[connection] = killRotatedNotDurable
		}
	}
	for _, holder := range holders {
		d.deadHolders[holder] = true
	}
	return classes
}

// freezeAPIServer stops the kube-apiserver for a random 15 to 30 seconds. The leader cannot
// renew its lease and exits; its supervisor starts it again, as a kubelet would.
func (d *driver) freezeAPIServer(ctx context.Context, e *event) {
	cfg := d.s.cfg
	outage := cfg.outageMin
	if cfg.outageMax > cfg.outageMin {
		outage += time.Duration(d.rng.Int64N(int64(cfg.outageMax - cfg.outageMin)))
	}
	for _, p := range d.managers.running() {
		_, _ = d.managers.scrape(ctx, p)
	}
	crashesBefore := len(d.managers.crashes())
	if err := freezeProcess(d.s.apiServerPid); err != nil {
		e.detail = "could not freeze: " + err.Error()
		return
	}
	sleep(context.WithoutCancel(ctx), outage)
	if err := resumeProcess(d.s.apiServerPid); err != nil {
		e.detail = "could not resume: " + err.Error()
		return
	}
	leader := d.managers.waitLeader(ctx, 60*time.Second)
	e.detail = fmt.Sprintf("frozen %.1fs; %d manager exits; leader again: %v", outage.Seconds(),
		len(d.managers.crashes())-crashesBefore, leader != nil)
}

// mauticError answers the next 3 token requests with an error that carries out no grant.
func (d *driver) mauticError(ctx context.Context, e *event) {
	faults := []mautictest.Fault{mautictest.FaultServerError, mautictest.FaultUnavailable, mautictest.FaultHTML, mautictest.FaultMalformedJSON}
	injectAndWait(ctx, d, e, faults[d.rng.IntN(len(faults))], 3, 0)
}

// mauticRandom injects random loss-free faults for 5 seconds.
func (d *driver) mauticRandom(ctx context.Context, e *event) {
	mautic := d.s.env.Mautic
	mautic.SetSlowDelay(heldDelay)
	before := mautic.TokenRequests()
	mautic.InjectRandomFaults([]mautictest.Fault{
		mautictest.FaultServerError, mautictest.FaultUnavailable, mautictest.FaultHTML, mautictest.FaultMalformedJSON,
		mautictest.FaultSlow, mautictest.FaultFractionalExpiresIn, mautictest.FaultUnusableAnswer,
	}, 0.3, d.rng.Int64())
	sleep(ctx, 5*time.Second)
	mautic.ClearFaults()
	sleep(ctx, heldDelay)
	e.detail = fmt.Sprintf("%d token requests during the faults", mautic.TokenRequests()-before)
}

// faultRun returns an event that injects fault into the next n token requests.
func faultRun(fault mautictest.Fault, n int, delay time.Duration) func(*driver, context.Context, *event) {
	return func(d *driver, ctx context.Context, e *event) { injectAndWait(ctx, d, e, fault, n, delay) }
}

// injectAndWait injects fault into the next n token requests, waits until they came (and until
// a held one is over), and clears the fault.
func injectAndWait(ctx context.Context, d *driver, e *event, fault mautictest.Fault, n int, delay time.Duration) {
	mautic := d.s.env.Mautic
	if delay > 0 {
		mautic.SetSlowDelay(delay)
	}
	before := mautic.TokenRequests()
	mautic.InjectFault(fault, n)
	met := waitFor(ctx, 30*time.Second, func() bool { return mautic.TokenRequests() >= before+n })
	// The last request takes its fault a moment after it is counted.
	sleep(ctx, 100*time.Millisecond)
	mautic.ClearFaults()
	e.faultsMet = min(mautic.TokenRequests()-before, n)
	if !met {
		d.notMet++
	}
	if delay > 0 {
		sleep(ctx, delay)
	}
	e.detail = fmt.Sprintf("%s x%d", fault, e.faultsMet)
}

// waitFor polls cond every 50ms until it holds (true) or timeout passes (false).
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return false
		}
		sleep(ctx, 50*time.Millisecond)
	}
}

// stateConnection returns the connection a state Secret belongs to.
func stateConnection(secret *corev1.Secret) (string, bool) {
	name, ok := strings.CutSuffix(secret.Name, authv1alpha1.StateSecretSuffix)
	return name, ok && name != ""
}

// idleKind waits longer than a refresh claim lasts. It is not in allKinds: CHAOS_KINDS names it
// to reproduce what happens when a dead manager's claim expires before anything else happens.
var idleKind = &kind{name: "idle", description: "nothing for 150s, longer than a dead manager's claim lasts", policy: mustNotLose,
	run: func(_ *driver, ctx context.Context, e *event) {
		sleep(ctx, 150*time.Second)
		e.detail = "150s without an event"
	}}

// selectKinds returns the kinds named in a comma-separated list; all kinds for an empty one.
func selectKinds(list string) ([]*kind, error) {
	if strings.TrimSpace(list) == "" {
		return allKinds, nil
	}
	var selected []*kind
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, k := range append(allKinds[:len(allKinds):len(allKinds)], idleKind) {
			if k.name == name {
				selected, found = append(selected, k), true
			}
		}
		if !found {
			var names []string
			for _, k := range allKinds {
				names = append(names, k.name)
			}
			names = append(names, idleKind.name)
			return nil, fmt.Errorf("unknown event kind %q; the kinds are %s", name, strings.Join(names, ", "))
		}
	}
	return selected, nil
}
