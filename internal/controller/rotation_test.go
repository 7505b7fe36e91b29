package controller

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/pending"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
)

// Refresh tokens of the rotation tests.
const (
	storedRefreshToken  = "stored-refresh-token"
	rotatedRefreshToken = "rotated-refresh-token"
	newerRefreshToken   = "authorized-meanwhile"
)

// scriptedMautic answers token requests from a script, recording the refresh tokens presented.
type scriptedMautic struct {
	mu        sync.Mutex
	presented []string
	answer    func(ctx context.Context, req mautic.TokenRequest) (*mautic.Token, error)
}

func (m *scriptedMautic) Token(ctx context.Context, req mautic.TokenRequest) (*mautic.Token, error) {
	m.mu.Lock()
	m.presented = append(m.presented, req.RefreshToken)
	m.mu.Unlock()
	return m.answer(ctx, req)
}

func (m *scriptedMautic) Verify(context.Context, mautic.VerifyRequest) (*mautic.VerifyResult, error) {
	return &mautic.VerifyResult{}, nil
}

func (m *scriptedMautic) refreshTokensPresented() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.presented...)
}

// rotates answers like Mautic: a new access token and the rotated refresh token.
func rotates(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
	return &mautic.Token{AccessToken: "access", TokenType: "bearer", RefreshToken: rotatedRefreshToken, ExpiresIn: time.Hour}, nil
}

// rotationWorld is an AuthorizationCode connection with a stored refresh token, in a fake API server.
type rotationWorld struct {
	t      *testing.T
	conn   *authv1alpha1.MauticConnection
	client client.WithWatch
	mautic *scriptedMautic
	// failWrites makes every create and update of a Secret fail while set, as an API server outage does.
	failWrites bool
	// beforeWrite, when set, runs before each Secret write reaches the fake API server.
	beforeWrite func(ctx context.Context, c client.WithWatch, obj client.Object)
	mu          sync.Mutex
}

func newRotationWorld(t *testing.T) *rotationWorld {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(authv1alpha1.AddToScheme(scheme))
	conn := testConnection()
	conn.Spec.Grant = authv1alpha1.GrantAuthorizationCode
	state := refreshstate.New(conn)
	refreshstate.SetRefreshToken(state, conn, storedRefreshToken, statusNow.Add(-time.Hour))
	w := &rotationWorld{t: t, conn: conn, mautic: &scriptedMautic{answer: rotates}}
	write := func(ctx context.Context, c client.WithWatch, obj client.Object, do func() error) error {
		w.mu.Lock()
		before := w.beforeWrite
		w.mu.Unlock()
		if _, isSecret := obj.(*corev1.Secret); isSecret {
			if before != nil {
				before(ctx, c, obj)
			}
			w.mu.Lock()
			failing := w.failWrites
			w.mu.Unlock()
			if failing {
				return apierrors.NewServiceUnavailable("the API server is down")
			}
		}
		return do()
	}
	w.client = fake.NewClientBuilder().WithScheme(scheme).WithObjects(conn.DeepCopy(), state).
		WithInterceptorFuncs(interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				return write(ctx, c, obj, func() error { return c.Create(ctx, obj, opts...) })
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				return write(ctx, c, obj, func() error { return c.Update(ctx, obj, opts...) })
			},
		}).Build()
	return w
}

// reconciler returns a reconciler over the world, as one manager process, with store.
func (w *rotationWorld) reconciler(store *pending.Store) *MauticConnectionReconciler {
	return &MauticConnectionReconciler{
		Client: w.client, APIReader: w.client, Mautic: w.mautic,
		Clock: clocktesting.NewFakePassiveClock(statusNow), Pending: store,
	}
}

func (w *rotationWorld) scope() *scope {
	return &scope{conn: w.conn.DeepCopy(), now: statusNow, baseURL: testSiteURL, credentials: credentials{clientID: "id", clientSecret: "secret"}}
}

func (w *rotationWorld) setFailWrites(fail bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failWrites = fail
}

// state reads the state Secret; nil when missing.
func (w *rotationWorld) state() *corev1.Secret {
	w.t.Helper()
	state := &corev1.Secret{}
	err := w.client.Get(context.Background(), client.ObjectKey{Namespace: w.conn.Namespace, Name: w.conn.StateSecretName()}, state)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		w.t.Fatalf("reading the state Secret: %v", err)
	}
	return state
}

func (w *rotationWorld) refresh(r *MauticConnectionReconciler) (*mautic.Token, error) {
	return r.refreshWithRotation(context.Background(), w.scope(), mautic.TokenRequest{ClientID: "id", ClientSecret: "secret"})
}

func TestRotationPersistsBeforeHandingBackTheToken(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	w := newRotationWorld(t)
	store, _ := pending.Open(t.TempDir())
	obtained, err := w.refresh(w.reconciler(store))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obtained.AccessToken).To(Equal("access"))
	state := w.state()
	g.Expect(refreshstate.RefreshToken(state)).To(Equal(rotatedRefreshToken))
	g.Expect(state.Annotations).NotTo(HaveKey(authv1alpha1.RefreshClaimAnnotation), "the claim is released by the persist")
	g.Expect(store.List()).To(BeEmpty(), "nothing left pending")
	g.Expect(w.mautic.refreshTokensPresented()).To(Equal([]string{storedRefreshToken}))
}

// An API server outage during the persist keeps the rotated token in the pending directory; the
// next process writes it before spending anything.
func TestRotationKeepsAnUnpersistedTokenAcrossARestart(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	w := newRotationWorld(t)
	dir := t.TempDir()
	store, _ := pending.Open(dir)
	w.beforeWrite = func(_ context.Context, _ client.WithWatch, obj client.Object) {
		// The claim goes through; the API server goes down as Mautic answers.
		if obj.GetAnnotations()[authv1alpha1.RefreshClaimAnnotation] == "" {
			w.setFailWrites(true)
		}
	}
	_, err := w.refresh(w.reconciler(store))
	g.Expect(err).To(MatchError(ContainSubstring("kept in " + dir)))
	g.Expect(refreshstate.RefreshToken(w.state())).To(Equal(storedRefreshToken), "the outage kept the write out")

	// The process dies; the API server comes back; a new process starts with the same directory.
	w.mu.Lock()
	w.beforeWrite, w.failWrites = nil, false
	w.mu.Unlock()
	reopened, err := pending.Open(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reopened.List()).To(HaveLen(1))
	next := w.reconciler(reopened)
	g.Expect(next.ReplayPending(context.Background())).To(Succeed())
	g.Expect(refreshstate.RefreshToken(w.state())).To(Equal(rotatedRefreshToken))
	g.Expect(reopened.List()).To(BeEmpty())

	w.mautic.answer = func(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
		return &mautic.Token{AccessToken: "access-2", RefreshToken: "rotated-again", ExpiresIn: time.Hour}, nil
	}
	_, err = w.refresh(next)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(w.mautic.refreshTokensPresented()).To(Equal([]string{storedRefreshToken, rotatedRefreshToken}), "never the spent one again")
}

func TestRotationReplayBeforeTheNextRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// arrange changes the world after the token was left pending.
		arrange   func(g *WithT, w *rotationWorld)
		wantToken string
	}{
		{name: "state Secret still holds the spent token", arrange: func(*WithT, *rotationWorld) {}, wantToken: rotatedRefreshToken},
		{name: "state Secret was deleted", arrange: func(g *WithT, w *rotationWorld) {
			g.Expect(w.client.Delete(context.Background(), w.state())).To(Succeed())
		}, wantToken: rotatedRefreshToken},
		{name: "a person authorized again meanwhile", arrange: func(g *WithT, w *rotationWorld) {
			state := w.state()
			refreshstate.SetRefreshToken(state, w.conn, newerRefreshToken, statusNow)
			g.Expect(w.client.Update(context.Background(), state)).To(Succeed())
		}, wantToken: newerRefreshToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			w := newRotationWorld(t)
			store, _ := pending.Open("")
			g.Expect(store.Put(pending.Token{Namespace: w.conn.Namespace, Name: w.conn.Name, UID: string(w.conn.UID),
				SpentDigest: refreshstate.Digest(storedRefreshToken), RefreshToken: rotatedRefreshToken, IssuedAt: statusNow})).To(Succeed())
			tc.arrange(g, w)

			w.mautic.answer = func(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
				return &mautic.Token{AccessToken: "access", RefreshToken: "next", ExpiresIn: time.Hour}, nil
			}
			_, err := w.refresh(w.reconciler(store))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(w.mautic.refreshTokensPresented()).To(Equal([]string{tc.wantToken}), "the token replayed (or the newer one) is spent")
			g.Expect(refreshstate.RefreshToken(w.state())).To(Equal("next"))
			g.Expect(store.List()).To(BeEmpty())
		})
	}
}

func TestRotationPersistAfterAConcurrentWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// during runs as Mautic answers, after the claim.
		during    func(g *WithT, w *rotationWorld)
		wantToken string
	}{
		{name: "state Secret deleted during the refresh is created again", during: func(g *WithT, w *rotationWorld) {
			g.Expect(w.client.Delete(context.Background(), w.state())).To(Succeed())
		}, wantToken: rotatedRefreshToken},
		{name: "bookkeeping written during the refresh", during: func(g *WithT, w *rotationWorld) {
			state := w.state()
			metav1.SetMetaDataAnnotation(&state.ObjectMeta, "example.com/touched", "yes")
			g.Expect(w.client.Update(context.Background(), state)).To(Succeed())
		}, wantToken: rotatedRefreshToken},
		{name: "a newer authorization during the refresh is kept", during: func(g *WithT, w *rotationWorld) {
			state := w.state()
			refreshstate.SetRefreshToken(state, w.conn, newerRefreshToken, statusNow)
			g.Expect(w.client.Update(context.Background(), state)).To(Succeed())
		}, wantToken: newerRefreshToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			w := newRotationWorld(t)
			w.mautic.answer = func(ctx context.Context, req mautic.TokenRequest) (*mautic.Token, error) {
				tc.during(g, w)
				return rotates(ctx, req)
			}
			_, err := w.refresh(w.reconciler(nil))
			g.Expect(err).NotTo(HaveOccurred())
			state := w.state()
			g.Expect(refreshstate.RefreshToken(state)).To(Equal(tc.wantToken))
			g.Expect(refreshstate.ControlledBy(state, w.conn)).To(BeTrue())
		})
	}
}

func TestRotationFailures(t *testing.T) {
	t.Parallel()
	invalidGrant := &mautic.Error{Op: mautic.OpToken, Grant: mautic.GrantRefreshToken, StatusCode: 400, Type: "invalid_grant", Message: "Invalid refresh token"}
	unusable := func(recovered string) error {
		return &mautic.UnusableAnswerError{
			UnexpectedResponseError: &mautic.UnexpectedResponseError{Op: mautic.OpToken, StatusCode: 200, ContentType: "text/plain", Detail: "not JSON"},
			Grant:                   mautic.GrantRefreshToken,
			RefreshToken:            recovered,
		}
	}
	tests := []struct {
		name          string
		err           error
		wantReason    string // the stall reason; "" for a transient error
		wantMessage   string
		wantToken     string
		wantRejected  bool
		wantAmbiguous string
	}{
		{name: "invalid_grant marks the token rejected", err: invalidGrant,
			wantReason: authv1alpha1.ReauthorizationRequiredReason, wantMessage: "kubectl mautic authorize", wantToken: storedRefreshToken, wantRejected: true},
		{name: "an unusable answer with a refresh token: recovered and stored", err: unusable("recovered-refresh-token"),
			wantMessage: "recovered and stored", wantToken: "recovered-refresh-token"},
		{name: "an unusable answer without one: stalls, the token may be rotated", err: unusable(""),
			wantReason: authv1alpha1.RefreshAnswerUnusableReason, wantMessage: "kubectl mautic refresh", wantToken: storedRefreshToken, wantAmbiguous: "unusable answer"},
		{name: "a timeout is recorded as ambiguous and retried", err: context.DeadlineExceeded,
			wantToken: storedRefreshToken, wantAmbiguous: "timeout"},
		{name: "a 503 releases the claim and is retried", err: &mautic.Error{Op: mautic.OpToken, StatusCode: 503},
			wantToken: storedRefreshToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			w := newRotationWorld(t)
			w.mautic.answer = func(context.Context, mautic.TokenRequest) (*mautic.Token, error) { return nil, tc.err }
			_, err := w.refresh(w.reconciler(nil))
			g.Expect(err).To(HaveOccurred())
			var stall *stallError
			if tc.wantReason == "" {
				g.Expect(errors.As(err, &stall)).To(BeFalse(), "transient: %v", err)
			} else {
				g.Expect(errors.As(err, &stall)).To(BeTrue(), "stalls: %v", err)
				g.Expect(stall.reason).To(Equal(tc.wantReason))
			}
			g.Expect(err.Error()).To(ContainSubstring(tc.wantMessage))
			g.Expect(err.Error()).NotTo(ContainSubstring(storedRefreshToken))
			state := w.state()
			g.Expect(refreshstate.RefreshToken(state)).To(Equal(tc.wantToken))
			g.Expect(refreshstate.Rejected(state)).To(Equal(tc.wantRejected))
			g.Expect(state.Annotations).NotTo(HaveKey(authv1alpha1.RefreshClaimAnnotation), "the claim is released")
			ambiguous, ok := refreshstate.AmbiguousRefresh(state)
			g.Expect(ok).To(Equal(tc.wantAmbiguous != ""))
			g.Expect(ambiguous.Cause).To(Equal(tc.wantAmbiguous))
		})
	}
}

// invalid_grant after a refresh that ended without an answer says that the token was probably
// rotated then, and a rejection is recorded even when the first write conflicts.
func TestRotationInvalidGrantAfterAnAmbiguousRefresh(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	w := newRotationWorld(t)
	r := w.reconciler(nil)
	w.mautic.answer = func(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
		return nil, context.DeadlineExceeded
	}
	_, err := w.refresh(r)
	g.Expect(err).To(HaveOccurred())

	conflicted := false
	w.mautic.answer = func(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
		return nil, &mautic.Error{Op: mautic.OpToken, Grant: mautic.GrantRefreshToken, StatusCode: 400, Type: "invalid_grant"}
	}
	w.beforeWrite = func(ctx context.Context, c client.WithWatch, obj client.Object) {
		if obj.GetAnnotations()[authv1alpha1.RejectedHashAnnotation] != "" && !conflicted {
			conflicted = true // someone else writes first: the rejection must be retried
			state := w.state()
			metav1.SetMetaDataAnnotation(&state.ObjectMeta, "example.com/touched", "yes")
			g.Expect(c.Update(ctx, state)).To(Succeed())
		}
	}
	_, err = w.refresh(r)
	var stall *stallError
	g.Expect(errors.As(err, &stall)).To(BeTrue())
	g.Expect(stall.reason).To(Equal(authv1alpha1.ReauthorizationRequiredReason))
	g.Expect(stall.message).To(ContainSubstring("ended without a usable answer (timeout)"))
	g.Expect(conflicted).To(BeTrue())
	g.Expect(refreshstate.Rejected(w.state())).To(BeTrue())

	// Rejected tokens are never sent again.
	_, err = w.refresh(r)
	g.Expect(errors.As(err, &stall)).To(BeTrue())
	g.Expect(w.mautic.refreshTokensPresented()).To(HaveLen(2))
}

// A claim is judged by the API server's clock: a claim another manager made a minute ago (by the
// API server) blocks even when this manager's clock runs an hour ahead, and one older than the TTL
// is taken over.
func TestRotationClaimAgeByTheAPIServersClock(t *testing.T) {
	t.Parallel()
	serverNow := statusNow
	claimed := func(recordedAt time.Time) *corev1.Secret {
		state := refreshstate.New(testConnection())
		refreshstate.SetClaim(state, "other-manager", statusNow.Add(time.Hour)) // the other node's clock is wrong too
		state.ManagedFields = []metav1.ManagedFieldsEntry{{
			Manager: authv1alpha1.RefreshClaimFieldManager, Operation: metav1.ManagedFieldsOperationUpdate,
			Time: &metav1.Time{Time: recordedAt},
		}}
		return state
	}
	tests := []struct {
		name      string
		recorded  time.Time
		wantBlock bool
	}{
		{name: "a minute old", recorded: serverNow.Add(-time.Minute), wantBlock: true},
		{name: "just made", recorded: serverNow, wantBlock: true},
		{name: "older than the TTL", recorded: serverNow.Add(-DefaultClaimTTL - time.Second), wantBlock: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			w := newRotationWorld(t)
			state := w.state()
			state.Annotations = claimed(tc.recorded).Annotations
			state.ManagedFields = claimed(tc.recorded).ManagedFields
			r := w.reconciler(nil)
			r.Clock = clocktesting.NewFakePassiveClock(statusNow.Add(time.Hour))
			r.ServerClock = clocktesting.NewFakePassiveClock(serverNow)
			_, err := r.claim(context.Background(), w.scope(), state)
			if tc.wantBlock {
				g.Expect(err).To(MatchError(errRefreshInFlight))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
}

// Once shutdown began, no refresh starts; one already claimed runs to completion even though the
// reconcile's context is cancelled, and shutdown waits for it.
func TestRotationShutdown(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	w := newRotationWorld(t)
	r := w.reconciler(nil)
	asked, release := make(chan struct{}), make(chan struct{})
	w.mautic.answer = func(ctx context.Context, req mautic.TokenRequest) (*mautic.Token, error) {
		close(asked)
		<-release
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return rotates(ctx, req)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.refreshWithRotation(ctx, w.scope(), mautic.TokenRequest{ClientID: "id", ClientSecret: "secret"})
		done <- err
	}()
	<-asked
	cancel() // SIGTERM: the manager's context ends while Mautic is answering
	stopped := make(chan error, 1)
	go func() { stopped <- r.StopRefreshes(context.Background()) }()
	g.Consistently(stopped).WithTimeout(200*time.Millisecond).ShouldNot(Receive(), "shutdown waits for the refresh")

	_, err := r.refreshWithRotation(context.Background(), w.scope(), mautic.TokenRequest{ClientID: "id", ClientSecret: "secret"})
	g.Expect(err).To(MatchError(errShuttingDown), "no new refresh once shutdown began")

	close(release)
	g.Eventually(done).Should(Receive(BeNil()))
	g.Eventually(stopped).Should(Receive(BeNil()))
	g.Expect(refreshstate.RefreshToken(w.state())).To(Equal(rotatedRefreshToken))
	g.Expect(w.mautic.refreshTokensPresented()).To(HaveLen(1))
}

func TestCheckMauticTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		timeout time.Duration
		wantErr bool
	}{
		{timeout: mautic.DefaultTimeout},
		{timeout: 80 * time.Second},
		{timeout: 81 * time.Second, wantErr: true},
		{timeout: 2 * time.Minute, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.timeout.String(), func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			err := CheckMauticTimeout(tc.timeout, DefaultClaimTTL)
			if tc.wantErr {
				g.Expect(err).To(MatchError(ContainSubstring("use at most 1m20s")))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
		})
	}
}

// After a success answer that could not be read and held no refresh token, the stored token is not
// sent again by any later reconcile (the state Secret's own update triggers one), only when a
// person requests a refresh.
func TestRotationDoesNotResendAfterAnUnusableAnswer(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	w := newRotationWorld(t)
	r := w.reconciler(nil)
	w.mautic.answer = func(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
		return nil, &mautic.UnusableAnswerError{
			UnexpectedResponseError: &mautic.UnexpectedResponseError{Op: mautic.OpToken, StatusCode: 200, ContentType: "application/json", Detail: "no access_token"},
			Grant:                   mautic.GrantRefreshToken,
		}
	}
	_, err := w.refresh(r)
	var stall *stallError
	g.Expect(errors.As(err, &stall)).To(BeTrue())
	g.Expect(stall.reason).To(Equal(authv1alpha1.RefreshAnswerUnusableReason))

	w.mautic.answer = rotates
	_, err = w.refresh(r) // a reconcile for another reason: the token expired, say
	g.Expect(errors.As(err, &stall)).To(BeTrue())
	g.Expect(stall.reason).To(Equal(authv1alpha1.RefreshAnswerUnusableReason))
	g.Expect(w.mautic.refreshTokensPresented()).To(HaveLen(1), "not sent again on its own")

	s := w.scope()
	s.requestReason = authv1alpha1.RefreshRequestedReason
	_, err = r.refreshWithRotation(context.Background(), s, mautic.TokenRequest{ClientID: "id", ClientSecret: "secret"})
	g.Expect(err).NotTo(HaveOccurred(), "a person asked: if a proxy answered in Mautic's place, the token still works")
	g.Expect(refreshstate.RefreshToken(w.state())).To(Equal(rotatedRefreshToken))
}

// A refresh that cannot spend the stored token safely stops before Mautic sees a request: a claim
// lost to another manager waits, a missing, foreign or rejected token stalls, and an API server
// that refuses the claim is the API server's error, retried by controller-runtime.
func TestRotationStopsBeforeSpending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// arrange changes the world before the refresh.
		arrange    func(g Gomega, w *rotationWorld)
		wantWait   bool
		wantReason string // the stall's reason; "" for none
		wantAPIErr bool
	}{
		{name: "another manager claims first", wantWait: true, arrange: func(g Gomega, w *rotationWorld) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.beforeWrite = func(ctx context.Context, c client.WithWatch, obj client.Object) {
				if _, claiming := obj.GetAnnotations()[authv1alpha1.RefreshClaimAnnotation]; claiming {
					w.mu.Lock()
					w.beforeWrite = nil
					w.mu.Unlock()
					state := &corev1.Secret{}
					g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), state)).To(Succeed())
					metav1.SetMetaDataAnnotation(&state.ObjectMeta, "example.com/touched", "yes")
					g.Expect(c.Update(ctx, state)).To(Succeed()) // the claim's resourceVersion is now stale
				}
			}
		}},
		{name: "no state Secret", wantReason: authv1alpha1.AuthorizationRequiredReason, arrange: func(g Gomega, w *rotationWorld) {
			g.Expect(w.client.Delete(context.Background(), w.state())).To(Succeed())
		}},
		{name: "a state Secret another object controls", wantReason: authv1alpha1.TokenSecretConflictReason, arrange: func(g Gomega, w *rotationWorld) {
			state := w.state()
			state.OwnerReferences[0].UID = "someone-else"
			g.Expect(w.client.Update(context.Background(), state)).To(Succeed())
		}},
		{name: "a token Mautic refused before", wantReason: authv1alpha1.ReauthorizationRequiredReason, arrange: func(g Gomega, w *rotationWorld) {
			state := w.state()
			refreshstate.SetRejected(state, storedRefreshToken)
			g.Expect(w.client.Update(context.Background(), state)).To(Succeed())
		}},
		{name: "the API server refuses the claim", wantAPIErr: true, arrange: func(_ Gomega, w *rotationWorld) {
			w.setFailWrites(true)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			w := newRotationWorld(t)
			tc.arrange(g, w)

			_, err := w.refresh(w.reconciler(nil))

			g.Expect(err).To(HaveOccurred())
			g.Expect(w.mautic.refreshTokensPresented()).To(BeEmpty(), "nothing was sent to Mautic")
			g.Expect(errors.Is(err, errRefreshInFlight)).To(Equal(tc.wantWait), "%v", err)
			var stall *stallError
			g.Expect(errors.As(err, &stall)).To(Equal(tc.wantReason != ""), "%v", err)
			if tc.wantReason != "" {
				g.Expect(stall.reason).To(Equal(tc.wantReason))
			}
			g.Expect(apierrors.IsServiceUnavailable(err)).To(Equal(tc.wantAPIErr), "%v", err)
		})
	}
}
