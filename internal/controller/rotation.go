package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/pending"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
)

// Bounds of the rotation's critical section: claim, spend and persist run to completion once
// started, within their own deadline rather than the manager's context.
const (
	// DefaultClaimTTL is how long a claim by another manager blocks a refresh, by the API server's
	// clock: longer than any critical section, so that a live holder is never overtaken.
	DefaultClaimTTL = 2 * time.Minute
	// claimBudget bounds the claim write (and the reads before it).
	claimBudget = 10 * time.Second
	// persistBudget bounds the retries that write a rotated refresh token to the state Secret
	// before it is left to the pending store.
	persistBudget = 10 * time.Second
	// claimMargin is the least time between the end of a critical section and the expiry of its claim.
	claimMargin = 20 * time.Second
)

// CriticalSectionTimeout is the longest a refresh of an AuthorizationCode connection runs once it
// has claimed the refresh token, with mauticTimeout per request to Mautic. Graceful shutdown must
// allow at least this long.
func CriticalSectionTimeout(mauticTimeout time.Duration) time.Duration {
	return claimBudget + mauticTimeout + persistBudget
}

// CheckMauticTimeout refuses a Mautic timeout whose critical section would outlive its claim, so
// that another manager could spend the same refresh token meanwhile.
func CheckMauticTimeout(mauticTimeout, claimTTL time.Duration) error {
	if longest := CriticalSectionTimeout(mauticTimeout) + claimMargin; longest > claimTTL {
		return fmt.Errorf("--mautic-timeout %s is too long: a refresh may then run for %s (with the claim and persist "+
			"budgets and a %s margin), longer than the %s a refresh claim lasts; use at most %s",
			mauticTimeout, longest, claimMargin, claimTTL, claimTTL-claimMargin-claimBudget-persistBudget)
	}
	return nil
}

var (
	// errRefreshInFlight is returned when another manager holds a fresh claim on the refresh token.
	errRefreshInFlight = errors.New("another manager is refreshing this connection's token; retrying")
	// errShuttingDown is returned when a refresh would start after shutdown began.
	errShuttingDown = errors.New("the manager is shutting down; the next manager refreshes this connection")
)

// refreshGate lets refreshes in until shutdown begins, and lets shutdown wait for those in flight.
type refreshGate struct {
	mu       sync.Mutex
	closed   bool
	inFlight sync.WaitGroup
}

// enter admits one refresh; false once the gate is closed.
func (g *refreshGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.inFlight.Add(1)
	return true
}

// leave ends a refresh that enter admitted.
func (g *refreshGate) leave() { g.inFlight.Done() }

// closeAndWait admits no more refreshes and waits for those in flight, or for ctx.
func (g *refreshGate) closeAndWait(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.inFlight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("refreshes still in flight: %w", ctx.Err())
	}
}

// Reconciling reports whether any reconcile has started: before that, no refresh can be in flight.
func (r *MauticConnectionReconciler) Reconciling() bool { return r.reconciling.Load() }

// StopRefreshes starts no more refreshes of refresh tokens and waits, until ctx ends, for those
// already claimed to finish spending and persisting. The manager calls it when it stops, whatever
// the reason (a signal, a lost leader election), before the process exits.
func (r *MauticConnectionReconciler) StopRefreshes(ctx context.Context) error {
	return r.gate.closeAndWait(ctx)
}

// refreshWithRotation spends the stored refresh token for a new access token, in the order that
// never loses a token: claim the stored token (an update guarded by resourceVersion, so that two
// managers never spend it twice), ask Mautic, persist the rotated refresh token, and only then hand
// the access token back for publishing. Once the claim is attempted, the section runs to completion
// on its own deadline: a cancelled reconcile (the manager shutting down) does not cut it short.
func (r *MauticConnectionReconciler) refreshWithRotation(ctx context.Context, s *scope, req mautic.TokenRequest) (*mautic.Token, error) {
	if ctx.Err() != nil || !r.gate.enter() {
		return nil, errShuttingDown
	}
	defer r.gate.leave()
	critical, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimBudget+r.mauticTimeout())
	defer cancel()

	state, err := r.prepareState(critical, s)
	if err != nil {
		return nil, err
	}
	spent := refreshstate.RefreshToken(state)
	if refreshstate.Rejected(state) {
		return nil, r.reauthorizationRequired(s, state, "Mautic refused the stored refresh token earlier")
	}
	if ambiguous, ok := refreshstate.AmbiguousRefresh(state); ok && ambiguous.Cause == refreshstate.CauseUnusableAnswer &&
		s.requestReason != authv1alpha1.RefreshRequestedReason {
		// Probably rotated already: sent again only when a person asks for a refresh.
		return nil, r.unusableAnswer(s, fmt.Errorf("the refresh at %s got a success answer that could not be read",
			ambiguous.At.UTC().Format(time.RFC3339)))
	}
	if state, err = r.claim(critical, s, state); err != nil {
		return nil, err
	}

	req.Grant = mautic.GrantRefreshToken
	req.RefreshToken = spent
	obtained, err := r.Mautic.Token(critical, req)
	answeredAt := r.Clock.Now()
	if err != nil {
		return nil, r.spendFailed(ctx, s, state, spent, answeredAt, err)
	}
	rotated := obtained.RefreshToken
	if rotated == "" {
		rotated = spent // a server that does not rotate keeps the old one valid
	}
	if err := r.keepRotated(ctx, s, state, spent, rotated, answeredAt); err != nil {
		return nil, err
	}
	s.refreshTokenIssuedAt = s.now
	return obtained, nil
}

// keepRotated makes a rotated refresh token durable: first in the pending store (a local file,
// when the manager has a directory for it), then in the state Secret, retrying quickly within
// persistBudget. A token that still cannot be written stays in the pending store and is written
// before any other refresh of the connection.
// The time from Mautic's answer (at answeredAt) to the first durable copy is the window in which a
// SIGKILL loses the token; it is recorded as a metric.
func (r *MauticConnectionReconciler) keepRotated(ctx context.Context, s *scope, state *corev1.Secret, spent, rotated string, answeredAt time.Time) error {
	entry := pending.Token{
		Namespace: s.conn.Namespace, Name: s.conn.Name, UID: string(s.conn.UID),
		SpentDigest: refreshstate.Digest(spent), RefreshToken: rotated, IssuedAt: s.now,
	}
	log := logf.FromContext(ctx)
	durable := r.pendingStore().Put(entry)
	if durable != nil {
		log.Error(durable, "Could not write the rotated refresh token to the pending directory; it is kept in memory until persisted")
	}
	onDisk := durable == nil && r.pendingStore().Dir() != ""
	if onDisk {
		observeUnpersistedWindow(r.Clock.Since(answeredAt))
	}
	persistCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistBudget)
	defer cancel()
	err := r.persistRefreshToken(persistCtx, s, state, spent, rotated)
	if !onDisk && err == nil {
		observeUnpersistedWindow(r.Clock.Since(answeredAt))
	}
	if err != nil {
		where := "in memory"
		if onDisk {
			where = "in " + r.pendingStore().Dir()
		}
		return fmt.Errorf("persisting the rotated refresh token in Secret %s/%s (kept %s and written first next time): %w",
			s.conn.Namespace, s.conn.StateSecretName(), where, err)
	}
	if err := r.pendingStore().Remove(entry); err != nil {
		log.Error(err, "Could not remove a persisted refresh token from the pending directory; it is skipped on replay")
	}
	return nil
}

// spendFailed handles a refresh request that did not give a usable answer. A rotated refresh
// token recovered from an unusable answer is persisted at once; an answer that succeeded but held
// none, or a request whose outcome is unknown, is recorded on the state Secret so that a later
// invalid_grant explains itself; Mautic's refusal marks the token so that it is never sent again.
func (r *MauticConnectionReconciler) spendFailed(ctx context.Context, s *scope, state *corev1.Secret, spent string, answeredAt time.Time, err error) error {
	var unusable *mautic.UnusableAnswerError
	isUnusable := errors.As(err, &unusable)
	switch {
	case isUnusable && unusable.RefreshToken != "":
		if keepErr := r.keepRotated(ctx, s, state, spent, unusable.RefreshToken, answeredAt); keepErr != nil {
			return errors.Join(err, keepErr)
		}
		s.refreshTokenIssuedAt = s.now
		return fmt.Errorf("%w (the rotated refresh token in it was recovered and stored; retrying)", err)
	case isUnusable && unusable.MayHaveRotated():
		r.updateState(ctx, s, func(current *corev1.Secret) bool {
			refreshstate.SetAmbiguous(current, spent, s.now, refreshstate.CauseUnusableAnswer)
			return true
		}, spent)
		return r.unusableAnswer(s, err)
	case mautic.Classify(err) == mautic.ClassReauthorization:
		r.updateState(ctx, s, func(current *corev1.Secret) bool {
			refreshstate.SetRejected(current, spent)
			return true
		}, spent)
		return r.reauthorizationRequired(s, state, err.Error())
	case mautic.IsAmbiguous(err):
		r.updateState(ctx, s, func(current *corev1.Secret) bool {
			refreshstate.SetAmbiguous(current, spent, s.now, ambiguousCause(err))
			return true
		}, spent)
		return err
	default:
		r.updateState(ctx, s, func(current *corev1.Secret) bool {
			_, claimed := refreshstate.ClaimOf(current)
			refreshstate.ReleaseClaim(current)
			return claimed
		}, spent)
		return err
	}
}

// ambiguousCause names, in a word or two, why a request's outcome is unknown.
func ambiguousCause(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	default:
		return "no-answer"
	}
}

// prepareState reads the state Secret uncached and brings it up to date before a refresh: a
// rotated token that could not be persisted last time is written first, then a new seed from the
// credentials Secret. It stalls with AuthorizationRequired when there is no refresh token at all.
func (r *MauticConnectionReconciler) prepareState(ctx context.Context, s *scope) (*corev1.Secret, error) {
	state, err := r.readState(ctx, s)
	if err != nil {
		return nil, err
	}
	if replayed, err := r.replayPending(ctx, s, state); err != nil || replayed {
		if err != nil {
			return nil, err
		}
		return r.readState(ctx, s)
	}
	if seed := s.credentials.seed; seed != "" && !refreshstate.SeedUsed(state, seed) {
		if err := r.writeState(ctx, s, state, seed, func(desired *corev1.Secret) { refreshstate.SetSeedUsed(desired, seed) }); err != nil {
			return nil, fmt.Errorf("seeding the refresh token from the credentials Secret: %w", err)
		}
		return r.readState(ctx, s)
	}
	if refreshstate.RefreshToken(state) == "" {
		return nil, configurationError(authv1alpha1.AuthorizationRequiredReason, fmt.Sprintf(
			"no refresh token yet: run `kubectl mautic authorize %s -n %s`, or put a %s key in Secret %s/%s",
			s.conn.Name, s.conn.Namespace, authv1alpha1.RefreshTokenKey, s.conn.Namespace, s.conn.Spec.CredentialsSecretRef.Name))
	}
	return state, nil
}

// readState reads the state Secret uncached; nil when missing. A Secret of that name that another
// object controls stalls the connection.
func (r *MauticConnectionReconciler) readState(ctx context.Context, s *scope) (*corev1.Secret, error) {
	state, err := r.readSecret(ctx, s.conn.Namespace, s.conn.StateSecretName())
	if err != nil {
		return nil, err
	}
	if state != nil && !refreshstate.ControlledBy(state, s.conn) {
		return nil, configurationError(authv1alpha1.TokenSecretConflictReason, fmt.Sprintf(
			"Secret %s/%s exists and is not owned by this MauticConnection: delete it, then run kubectl mautic authorize %s -n %s",
			s.conn.Namespace, s.conn.StateSecretName(), s.conn.Name, s.conn.Namespace))
	}
	return state, nil
}

// replayPending writes a rotated refresh token that an earlier refresh could not persist, while
// the state Secret still holds the token that was spent for it (or is gone). When it holds another
// token, a person authorized again meanwhile: theirs is newer, and the pending one is dropped.
// It reports whether it wrote the state Secret.
func (r *MauticConnectionReconciler) replayPending(ctx context.Context, s *scope, state *corev1.Secret) (bool, error) {
	entry, ok := r.pendingStore().Get(string(s.conn.UID))
	if !ok {
		return false, nil
	}
	log := logf.FromContext(ctx).WithValues("mauticconnection", klog.KRef(entry.Namespace, entry.Name))
	if state != nil && refreshstate.Digest(refreshstate.RefreshToken(state)) != entry.SpentDigest {
		log.Info("Dropping a pending refresh token: the state Secret holds a newer one")
		if err := r.pendingStore().Remove(entry); err != nil {
			log.Error(err, "Could not remove a pending refresh token")
		}
		return false, nil
	}
	issued := *s
	issued.now = entry.IssuedAt
	if err := r.writeState(ctx, &issued, state, entry.RefreshToken, nil); err != nil {
		return false, fmt.Errorf("persisting the refresh token kept from an earlier refresh: %w", err)
	}
	log.Info("Persisted the refresh token kept from an earlier refresh", "issuedAt", entry.IssuedAt)
	if err := r.pendingStore().Remove(entry); err != nil {
		log.Error(err, "Could not remove a persisted refresh token from the pending directory; it is skipped on replay")
	}
	return true, nil
}

// ReplayPending writes every pending refresh token of connections that still exist, before any
// refresh: the manager runs it once it leads. Tokens of connections that are gone are dropped.
func (r *MauticConnectionReconciler) ReplayPending(ctx context.Context) error {
	var problems []error
	for _, entry := range r.pendingStore().List() {
		conn := &authv1alpha1.MauticConnection{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: entry.Namespace, Name: entry.Name}, conn)
		switch {
		case apierrors.IsNotFound(err) || (err == nil && string(conn.UID) != entry.UID):
			_ = r.pendingStore().Remove(entry)
			continue
		case err != nil:
			problems = append(problems, err)
			continue
		}
		s := &scope{conn: conn, now: r.Clock.Now()}
		state, err := r.readState(ctx, s)
		if err == nil {
			_, err = r.replayPending(ctx, s, state)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("%s/%s: %w", entry.Namespace, entry.Name, err))
		}
	}
	return errors.Join(problems...)
}

// claim marks the stored refresh token as being spent by this manager. The update is guarded by
// resourceVersion: a manager that lost the race gets a conflict and spends nothing. A claim by
// another manager blocks until it is DefaultClaimTTL old by the API server's clock.
func (r *MauticConnectionReconciler) claim(ctx context.Context, s *scope, state *corev1.Secret) (*corev1.Secret, error) {
	if c, ok := refreshstate.ClaimOf(state); ok && c.Holder != r.holder() && r.serverClock().Since(c.RecordedAt) < r.claimTTL() {
		return nil, errRefreshInFlight
	}
	claimed := state.DeepCopy()
	refreshstate.SetClaim(claimed, r.holder(), s.now)
	if err := r.Client.Update(ctx, claimed, client.FieldOwner(authv1alpha1.RefreshClaimFieldManager)); err != nil {
		if apierrors.IsConflict(err) {
			return nil, errRefreshInFlight
		}
		return nil, fmt.Errorf("claiming the refresh token in Secret %s/%s: %w", state.Namespace, state.Name, err)
	}
	return claimed, nil
}

// persistRefreshToken writes the rotated refresh token, retrying quickly until ctx ends. A
// conflict means someone wrote the state Secret after our claim: if it still holds the token we
// spent, write again on the new version; if it holds another token (a person authorized again),
// theirs is newer and is kept. A state Secret deleted meanwhile is created again: the rotated
// token is the only valid one.
func (r *MauticConnectionReconciler) persistRefreshToken(ctx context.Context, s *scope, state *corev1.Secret, spent, rotated string) error {
	backoff := wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 100, Cap: 2 * time.Second}
	var lastErr error
	for {
		if lastErr = r.writeState(ctx, s, state, rotated, nil); lastErr == nil {
			return nil
		}
		if apierrors.IsConflict(lastErr) || apierrors.IsNotFound(lastErr) || apierrors.IsAlreadyExists(lastErr) {
			current, err := r.readState(ctx, s)
			switch {
			case err != nil:
				lastErr = err
			case current != nil && refreshstate.RefreshToken(current) != spent:
				logf.FromContext(ctx).Info("The state Secret was written during the refresh; keeping its newer refresh token")
				return nil
			default:
				state = current
				continue
			}
		}
		select {
		case <-ctx.Done():
			return lastErr
		case <-time.After(backoff.Step()):
		}
	}
}

// updateState applies mutate to the state Secret while it still holds spent, retrying on a
// conflict; best effort, for bookkeeping whose loss costs no token. mutate reports whether it
// changed anything.
func (r *MauticConnectionReconciler) updateState(ctx context.Context, s *scope, mutate func(*corev1.Secret) bool, spent string) {
	bookkeeping, cancel := context.WithTimeout(context.WithoutCancel(ctx), persistBudget)
	defer cancel()
	for range 5 {
		state, err := r.readState(bookkeeping, s)
		if err != nil || state == nil || refreshstate.RefreshToken(state) != spent {
			return
		}
		updated := state.DeepCopy()
		if !mutate(updated) {
			return
		}
		if err := r.Client.Update(bookkeeping, updated, client.FieldOwner(FieldOwner)); !apierrors.IsConflict(err) {
			return
		}
	}
}

// writeState creates or updates the state Secret so that it holds refreshToken, issued now, and
// applies extra; an update is guarded by the resourceVersion of state.
func (r *MauticConnectionReconciler) writeState(ctx context.Context, s *scope, state *corev1.Secret, refreshToken string, extra func(*corev1.Secret)) error {
	desired := state.DeepCopy()
	if desired == nil {
		desired = refreshstate.New(s.conn)
	}
	refreshstate.SetRefreshToken(desired, s.conn, refreshToken, s.now)
	if extra != nil {
		extra(desired)
	}
	if state == nil {
		return r.Client.Create(ctx, desired, client.FieldOwner(FieldOwner))
	}
	return r.Client.Update(ctx, desired, client.FieldOwner(FieldOwner))
}

// refreshTokenIssuedAt reads when the stored refresh token was issued from the cached state Secret;
// zero when unknown.
func (r *MauticConnectionReconciler) refreshTokenIssuedAt(ctx context.Context, conn *authv1alpha1.MauticConnection) time.Time {
	state := &corev1.Secret{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: conn.StateSecretName()}, state); err != nil {
		return time.Time{}
	}
	return refreshstate.IssuedAt(state)
}

// reauthorizationRequired stalls the connection until a person authorizes it again. When the
// refresh before this one ended without an answer, the message says that Mautic probably rotated
// the token then.
func (r *MauticConnectionReconciler) reauthorizationRequired(s *scope, state *corev1.Secret, cause string) error {
	if ambiguous, ok := refreshstate.AmbiguousRefresh(state); ok {
		cause = fmt.Sprintf("%s, after the refresh at %s ended without a usable answer (%s): Mautic probably rotated the "+
			"refresh token then and the new one never arrived", cause, ambiguous.At.UTC().Format(time.RFC3339), ambiguous.Cause)
	}
	return reauthorizationError(authv1alpha1.ReauthorizationRequiredReason, fmt.Sprintf(
		"%s: authorize again with `kubectl mautic authorize %s -n %s` (or change the %s seed in Secret %s/%s)",
		cause, s.conn.Name, s.conn.Namespace, authv1alpha1.RefreshTokenKey, s.conn.Namespace, s.conn.Spec.CredentialsSecretRef.Name))
}

// unusableAnswer stalls a connection whose refresh succeeded on Mautic's side but whose answer
// could not be read and held no refresh token.
func (r *MauticConnectionReconciler) unusableAnswer(s *scope, err error) error {
	return reauthorizationError(authv1alpha1.RefreshAnswerUnusableReason, fmt.Sprintf(
		"%v: if Mautic itself answered, it has rotated the refresh token and the new one is lost; the stored one is not sent "+
			"again on its own. Check that no proxy or login page answers in Mautic's place; if one did (Mautic never saw the "+
			"request), request a refresh with `kubectl mautic refresh %s -n %s`, otherwise authorize again with "+
			"`kubectl mautic authorize %s -n %s`", err, s.conn.Name, s.conn.Namespace, s.conn.Name, s.conn.Namespace))
}

// holder identifies this manager process in refresh claims.
func (r *MauticConnectionReconciler) holder() string {
	r.holderOnce.Do(func() {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.holderID = hex.EncodeToString(b)
	})
	return r.holderID
}
