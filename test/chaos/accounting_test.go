package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

const (
	// sampleInterval is how often the published access tokens and the stored refresh tokens are
	// checked against the test server.
	sampleInterval = 200 * time.Millisecond
	// readTimeout bounds each read of the API server, which the outage events freeze.
	readTimeout = 2 * time.Second
	// attributionSlack lets a token seen broken just before an event's start count for that event:
	// Mautic rotates a moment before the SIGKILL that then loses the rotated token.
	attributionSlack = 500 * time.Millisecond
	// anomalyGrace is how long a suspicious status must last to count: status lags the Secrets.
	anomalyGrace = 5 * time.Second
)

// lossReasons are the Stalled reasons that mean the refresh-token chain is broken.
var lossReasons = map[string]bool{
	authv1alpha1.ReauthorizationRequiredReason: true,
	authv1alpha1.RefreshAnswerUnusableReason:   true,
}

// connection is one MauticConnection of the run and what the sampler learnt about it.
type connection struct {
	name        string
	credentials string
	app         mautictest.ClientApp
	uid         types.UID

	// accessToken is the last access token read from the token Secret; never printed.
	accessToken []byte
	// accounting starts once a valid access token was first published.
	accounting bool
	// down is the time without a valid published access token; gapStart the start of the
	// current gap (zero while valid); longestGap the longest gap.
	down, longestGap time.Duration
	gapStart         time.Time
	// lastIntact is the last sample at which the state Secret held a refresh token Mautic
	// accepts; brokenAt the first sample after it at which it did not.
	lastIntact, brokenAt time.Time
	// reseeding: a loss was recorded and a new seed must be written; recovering: it was written,
	// and the connection has not yet recovered.
	reseeding, recovering bool
	// suspicious is when a status that should not happen was first seen (zero: none).
	suspicious     time.Time
	suspiciousText string
	losses         int
	// refreshRequested: the connection stalled with RefreshAnswerUnusable on a token Mautic still
	// accepts (a proxy answered in its place), and a refresh was requested, as its message says.
	refreshRequested bool
	// stateDigest is the digest of the refresh token the state Secret held at the last sample.
	stateDigest string
	// stateNote describes the state Secret at the last sample (annotations hold digests and
	// claims, never a token), for the description of a loss.
	stateNote string
}

// loss is a refresh-token chain that broke: the stored token is no longer valid on the server.
type loss struct {
	connection string
	// reason is the Stalled reason, or "not stalled yet" for one found when the run ended.
	reason     string
	brokenAt   time.Time
	detectedAt time.Time
	event      *event
	// expected says why the loss is inherent; empty for a loss the operator must not have.
	expected string
	// state describes the state Secret when the loss was found.
	state string
}

// tracker samples the connections and keeps the event timeline and the losses.
type tracker struct {
	env       *localenv.Env
	namespace string
	// pendingDirs are the managers' pending directories.
	pendingDirs []string
	conns       []*connection

	mu        sync.Mutex
	events    []*event
	losses    []loss
	anomalies []string
	// personRefreshes counts the refreshes requested after a RefreshAnswerUnusable stall on a
	// token Mautic still accepts: what a person does who finds that a proxy answered.
	personRefreshes int
	lastTick        time.Time
	ticks           int
	// failedReads counts samples that could not read the API server (frozen).
	failedReads int
}

// addEvent records an event as it starts.
func (t *tracker) addEvent(e *event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, e)
}

// run samples every sampleInterval until ctx ends.
func (t *tracker) run(ctx context.Context) {
	ticker := time.NewTicker(sampleInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			t.sample(ctx)
		}
	}
}

// sample reads every Secret and connection of the namespace once, and updates the accounts.
func (t *tracker) sample(ctx context.Context) {
	readCtx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	secrets := &corev1.SecretList{}
	secretsErr := t.env.Client.List(readCtx, secrets, client.InNamespace(t.namespace))
	conns := &authv1alpha1.MauticConnectionList{}
	connsErr := t.env.Client.List(readCtx, conns, client.InNamespace(t.namespace))
	now := time.Now()

	bySecret := map[string]*corev1.Secret{}
	for i := range secrets.Items {
		bySecret[secrets.Items[i].Name] = &secrets.Items[i]
	}
	byConn := map[string]*authv1alpha1.MauticConnection{}
	for i := range conns.Items {
		byConn[conns.Items[i].Name] = &conns.Items[i]
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	dt := time.Duration(0)
	if !t.lastTick.IsZero() {
		dt = now.Sub(t.lastTick)
	}
	t.lastTick = now
	t.ticks++
	if secretsErr != nil || connsErr != nil {
		t.failedReads++
	}
	for _, c := range t.conns {
		if secretsErr == nil {
			if tokenSecret := bySecret[c.name+"-token"]; tokenSecret != nil {
				c.accessToken = append(c.accessToken[:0], tokenSecret.Data[authv1alpha1.AccessTokenKey]...)
			}
		}
		// A frozen API server leaves the last token read, as a workload's mounted copy would.
		t.accountAccess(c, now, dt)
		if secretsErr != nil {
			continue
		}
		state := bySecret[c.name+authv1alpha1.StateSecretSuffix]
		stateValid := t.env.Mautic.RefreshTokenValid(refreshstate.RefreshToken(state))
		c.stateNote = describeState(state)
		c.stateDigest = refreshstate.Digest(refreshstate.RefreshToken(state))
		if stateValid {
			c.lastIntact, c.brokenAt = now, time.Time{}
		} else if c.brokenAt.IsZero() {
			c.brokenAt = now
		}
		if connsErr != nil {
			continue
		}
		t.checkStatus(ctx, c, byConn[c.name], stateValid, now)
	}
}

// accountAccess adds dt to the connection's time without a valid access token when the last
// published token is not valid now.
func (t *tracker) accountAccess(c *connection, now time.Time, dt time.Duration) {
	valid := len(c.accessToken) > 0 && t.env.Mautic.AccessTokenValid(string(c.accessToken))
	if !c.accounting {
		c.accounting = valid
		return
	}
	if valid {
		c.gapStart = time.Time{}
		return
	}
	c.down += dt
	if c.gapStart.IsZero() {
		c.gapStart = now.Add(-dt)
	}
	c.longestGap = max(c.longestGap, now.Sub(c.gapStart))
}

// checkStatus records a loss when the connection is Stalled on a broken chain, writes a new
// seed after one, and notes statuses that should never happen. t.mu is held.
func (t *tracker) checkStatus(ctx context.Context, c *connection, conn *authv1alpha1.MauticConnection, stateValid bool, now time.Time) {
	if conn == nil {
		return
	}
	stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition)
	isStalled := stalled != nil && stalled.Status == metav1.ConditionTrue
	switch {
	case c.reseeding || c.recovering:
		// A loss is being repaired.
	case isStalled && lossReasons[stalled.Reason] && !stateValid:
		l := loss{connection: c.name, reason: stalled.Reason, brokenAt: c.brokenAt, detectedAt: now, state: c.stateNote}
		if l.brokenAt.IsZero() {
			l.brokenAt = now
		}
		t.attributeLocked(&l)
		t.losses = append(t.losses, l)
		c.losses++
		c.reseeding = true
	case isStalled && stalled.Reason == authv1alpha1.RefreshAnswerUnusableReason:
		// An unreadable 2xx answer (HTML, malformed JSON) that Mautic never produced: the operator
		// cannot tell it from a rotation, so it waits for a person, who requests a refresh.
		if !c.refreshRequested && t.requestRefresh(ctx, c) == nil {
			c.refreshRequested = true
			t.personRefreshes++
		}
	case isStalled:
		t.suspect(c, now, fmt.Sprintf("%s is Stalled (%s) while the state Secret holds a refresh token Mautic accepts", c.name, stalled.Reason))
	default:
		c.suspicious = time.Time{}
		c.refreshRequested = false
	}
	if c.reseeding && t.reseed(ctx, c) == nil {
		c.reseeding, c.recovering = false, true
	}
	if c.recovering && stateValid && !isStalled {
		c.recovering = false
	}
}

// suspect records an anomaly once it has lasted anomalyGrace. t.mu is held.
func (t *tracker) suspect(c *connection, now time.Time, text string) {
	if c.suspicious.IsZero() || c.suspiciousText != text {
		c.suspicious, c.suspiciousText = now, text
		return
	}
	if now.Sub(c.suspicious) >= anomalyGrace {
		t.anomalies = append(t.anomalies, fmt.Sprintf("%s: %s", c.suspicious.Format("15:04:05.000"), text))
		c.suspicious = now.Add(time.Hour) // report it once an hour at most
	}
}

// requestRefresh sets the refresh-requested-at annotation, as `kubectl mautic refresh` does.
func (t *tracker) requestRefresh(ctx context.Context, c *connection) error {
	writeCtx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	conn := &authv1alpha1.MauticConnection{}
	if err := t.env.Client.Get(writeCtx, client.ObjectKey{Namespace: t.namespace, Name: c.name}, conn); err != nil {
		return err
	}
	metav1.SetMetaDataAnnotation(&conn.ObjectMeta, authv1alpha1.RefreshRequestedAtAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
	return t.env.Client.Update(writeCtx, conn)
}

// reseed writes a new refresh token, issued by the test server, into the credentials Secret, as
// a person who authorized the connection again would.
func (t *tracker) reseed(ctx context.Context, c *connection) error {
	writeCtx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	credentials := &corev1.Secret{}
	if err := t.env.Client.Get(writeCtx, client.ObjectKey{Namespace: t.namespace, Name: c.credentials}, credentials); err != nil {
		return err
	}
	if credentials.Data == nil {
		credentials.Data = map[string][]byte{}
	}
	credentials.Data[authv1alpha1.RefreshTokenKey] = []byte(t.env.Mautic.IssueRefreshToken(c.app.ID))
	return t.env.Client.Update(writeCtx, credentials)
}

// attributeLocked ties a loss to the latest event that started before its chain broke (with
// attributionSlack) and says whether that event may lose a token. t.mu is held.
func (t *tracker) attributeLocked(l *loss) {
	for _, e := range t.events {
		if !e.start.After(l.brokenAt.Add(attributionSlack)) {
			l.event = e
		}
	}
	if l.event == nil {
		return
	}
	l.event.losses++
	switch l.event.kind.policy {
	case protocolLoss:
		l.expected = "protocol"
	case sigkillLoss:
		if l.event.killClasses[l.connection] == killRotatedNotDurable {
			l.expected = "sigkill window"
		}
	}
}

// finish classifies, once the run is over, every connection whose chain broke but that was not
// Stalled yet: a rotated token kept in the pending directory is not lost (the next manager that
// opens the directory writes it), one kept nowhere is. It returns the connections left in each state.
func (t *tracker) finish(brokenFor time.Duration) (pendingKept, unresolved []string) {
	pending := readPending(t.pendingDirs...)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, c := range t.conns {
		if c.reseeding || c.recovering || c.brokenAt.IsZero() {
			continue
		}
		switch {
		case t.keptInPending(c, pending):
			pendingKept = append(pendingKept, c.name)
		case now.Sub(c.brokenAt) >= brokenFor:
			l := loss{connection: c.name, reason: "not Stalled yet", brokenAt: c.brokenAt, detectedAt: now, state: c.stateNote}
			t.attributeLocked(&l)
			t.losses = append(t.losses, l)
			c.losses++
		default:
			unresolved = append(unresolved, c.name)
		}
	}
	return pendingKept, unresolved
}

// keptInPending reports whether the pending directory holds, for the token the connection's
// state Secret holds, a rotated token that Mautic accepts. t.mu is held.
func (t *tracker) keptInPending(c *connection, pending map[string][]pendingEntry) bool {
	return keeps(pending[string(c.uid)], c.stateDigest, t.env.Mautic.RefreshTokenValid)
}

// keeps reports whether one of entries holds, for the token with digest spentDigest, a rotated
// token that valid accepts.
func keeps(entries []pendingEntry, spentDigest string, valid func(string) bool) bool {
	for _, entry := range entries {
		if entry.SpentDigest == spentDigest && valid(entry.RefreshToken) {
			return true
		}
	}
	return false
}

// settleState reports whether every chain is intact, or broken for brokenFor with its new token
// nowhere (a loss, recorded by finish), and whether a broken chain has its new token in the
// pending directory, waiting for a manager to write it back.
func (t *tracker) settleState(brokenFor time.Duration) (settled, waitingOnPending bool) {
	pending := readPending(t.pendingDirs...)
	t.mu.Lock()
	defer t.mu.Unlock()
	settled = true
	for _, c := range t.conns {
		switch {
		case c.reseeding || c.recovering:
			settled = false
		case c.brokenAt.IsZero():
		case t.keptInPending(c, pending):
			settled, waitingOnPending = false, true
		case time.Since(c.brokenAt) < brokenFor:
			settled = false
		}
	}
	return settled, waitingOnPending
}

// pendingEntry is the part of a pending-directory file the suite reads.
type pendingEntry struct {
	UID          string `json:"uid"`
	SpentDigest  string `json:"spentDigest"`
	RefreshToken string `json:"refreshToken"` // checked against the test server, never printed
}

// readPending returns the files of the pending directories by connection UID.
func readPending(dirs ...string) map[string][]pendingEntry {
	entries := map[string][]pendingEntry{}
	for _, dir := range dirs {
		files, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, file := range files {
			if file.IsDir() || !strings.HasSuffix(file.Name(), ".pending.json") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, file.Name())) //nolint:gosec // the suite's own pending directory
			if err != nil {
				continue
			}
			var entry pendingEntry
			if json.Unmarshal(data, &entry) == nil && entry.UID != "" {
				entries[entry.UID] = append(entries[entry.UID], entry)
			}
		}
	}
	return entries
}

// describeState renders what a state Secret says besides its token: resourceVersion and the
// operator's annotations (claims, digests, times; never a token).
func describeState(state *corev1.Secret) string {
	if state == nil {
		return "no state Secret"
	}
	var parts []string
	for key, value := range state.Annotations {
		if short, ok := strings.CutPrefix(key, authv1alpha1.GroupVersion.Group+"/"); ok {
			parts = append(parts, short+"="+value)
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("resourceVersion %s, %s", state.ResourceVersion, strings.Join(parts, ", "))
}
