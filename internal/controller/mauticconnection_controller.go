// Package controller reconciles MauticConnections: it obtains tokens from Mautic through the
// mautic.Client seam, publishes them in the token Secret and reports status. It knows nothing of HTTP.
package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/pending"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// FieldOwner is the server-side apply field manager of every Secret the operator writes.
const FieldOwner = "mautic-operator"

// minRequeue keeps a renewal time in the past from turning into a hot loop.
const minRequeue = time.Second

// publishBudget bounds the publishing of a token just issued, which does not stop at shutdown.
const publishBudget = 10 * time.Second

// inFlightRetry is how soon a connection whose refresh token another manager is spending is looked at again.
const inFlightRetry = 2 * time.Second

// MauticConnectionReconciler keeps the token Secret of every MauticConnection valid.
type MauticConnectionReconciler struct {
	// Client reads MauticConnections and managed Secrets from the cache and writes through the API server.
	Client client.Client
	// APIReader reads credentials and CA Secrets uncached: the cache holds only managed Secrets.
	APIReader client.Reader
	// Mautic obtains and verifies tokens.
	Mautic mautic.Client
	// Clock tells the time; tests inject a fake one.
	Clock clock.PassiveClock
	// Recorder emits Kubernetes events on the connection.
	Recorder events.EventRecorder

	// ServerClock is the API server's clock, by which the age of a refresh claim is judged; default Clock.
	ServerClock clock.PassiveClock
	// Pending keeps rotated refresh tokens not yet persisted; default an in-memory store.
	Pending *pending.Store
	// MauticTimeout is the Mautic client's timeout per request, which bounds a refresh's critical
	// section; default mautic.DefaultTimeout.
	MauticTimeout time.Duration
	// ClaimTTL is how long another manager's refresh claim blocks a refresh; default DefaultClaimTTL.
	ClaimTTL time.Duration
	// RequireCredentialsLabel makes a credentials Secret usable only with the label
	// CredentialsOptInLabel=true, so that creating a MauticConnection does not let a namespace editor
	// send any Secret of the right shape to a server of their choosing.
	RequireCredentialsLabel bool
	// MinTokenInterval is the least time between two token requests of one connection, whatever
	// its spec or its server says; default DefaultMinTokenInterval, negative for none (tests).
	MinTokenInterval time.Duration
	// ConfigurationRetry is the first retry of a configuration failure, doubling up to an hour;
	// default DefaultConfigurationRetry.
	ConfigurationRetry time.Duration

	// secretWatch is the watch of Secret versions that SetupWithManager starts; nil without one.
	secretWatch *secretVersions

	memory            tokenMemory
	credentialsMemory credentialsMemory
	caMemory          caMemory
	statuses          statusMemory
	retries           configurationRetries
	namespaces        namespaceShare
	workers           int
	gate              refreshGate
	reconciling       atomic.Bool
	pendingOnce       sync.Once
	holderOnce        sync.Once
	holderID          string
}

// scope carries one reconcile's facts from phase to phase and into the status.
type scope struct {
	conn *authv1alpha1.MauticConnection
	now  time.Time
	// minTokenInterval is the least time between two token requests of this connection.
	minTokenInterval time.Duration
	// refreshRequest is the refresh-requested-at annotation's value as the status records it.
	refreshRequest string

	// Set by reconcileCredentials.
	baseURL         string
	credentials     credentials
	caCert          []byte
	credentialsHash string
	connectionHash  string
	// secretVersions are the resourceVersions of the Secrets read, to tell a changed input.
	secretVersions string
	// credentialsDeferred is true when the credentials are trusted from the Secrets' versions but
	// not read: they are read before a token request.
	credentialsDeferred bool

	// Set by reconcileToken.
	refreshTokenIssuedAt time.Time
	liveSecret           *corev1.Secret
	current              *issuedToken
	requestReason        string
	requestMessage       string
	issuedNow            bool
	verified             *mautic.VerifyResult

	// Set by phaseFailed: this reconcile's failed attempt, nil when none.
	failure *failure
	// Set by finishReconcile: when current is due for renewal.
	renewAt time.Time
}

// phase is one step of a reconcile. Phases run in order; phaseFailed decides whether the next one
// runs after an error (after a transient failure or a wait it does, to repair the token Secret).
type phase func(ctx context.Context, s *scope) (ctrl.Result, error)

// +kubebuilder:rbac:groups=auth.mautic-operator.dev,resources=mauticconnections,verbs=get;list;watch
// +kubebuilder:rbac:groups=auth.mautic-operator.dev,resources=mauticconnections/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=auth.mautic-operator.dev,resources=mauticconnections/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one MauticConnection's token Secret and status up to date.
func (r *MauticConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	r.reconciling.Store(true)
	if !r.namespaces.enter(req.Namespace, shareOf(r.workers)) {
		// This namespace holds its share of the workers: leave the rest to the others.
		return ctrl.Result{RequeueAfter: fairnessDelay(req.Namespace, req.Name)}, nil
	}
	defer r.namespaces.leave(req.Namespace)
	conn := &authv1alpha1.MauticConnection{}
	if err := r.Client.Get(ctx, req.NamespacedName, conn); err != nil {
		if apierrors.IsNotFound(err) {
			r.memory.forget(req.NamespacedName)
			r.credentialsMemory.forget(req.NamespacedName)
			r.statuses.forget(req.NamespacedName)
			r.retries.forget(req.NamespacedName)
			forgetConnectionMetrics(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !conn.DeletionTimestamp.IsZero() {
		// The token Secret goes with its owner; nothing to do.
		r.memory.forget(req.NamespacedName)
		forgetConnectionMetrics(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	r.statuses.catchUp(conn)
	s := &scope{conn: conn, now: r.Clock.Now(), minTokenInterval: r.minTokenInterval(), refreshRequest: refreshRequest(conn)}
	before := conn.DeepCopy()
	defer func() { result, retErr = r.finishReconcile(ctx, s, before, result, retErr) }()

	if conn.Spec.Suspend {
		logf.FromContext(ctx).V(1).Info("Connection is suspended; not refreshing")
		if expiresAt := conn.Status.ExpiresAt; expiresAt != nil && s.now.Before(expiresAt.Time) {
			// Look again when the token expires, so that Ready tells the truth.
			return ctrl.Result{RequeueAfter: expiresAt.Sub(s.now) + minRequeue}, nil
		}
		return ctrl.Result{}, nil
	}

	phases := []phase{r.reconcileCredentials, r.reconcileToken, r.reconcileTokenSecret}
	for _, run := range phases {
		phaseResult, err := run(ctx, s)
		if err != nil {
			// A transient failure, or a wait, lets the later phases run: the token Secret is still
			// repaired from a token that is valid.
			if phaseResult, err = r.phaseFailed(ctx, s, err); err != nil || s.stalled() {
				return phaseResult, err
			}
		}
		result = lowestRequeue(result, phaseResult)
	}
	r.retries.forget(req.NamespacedName)
	if s.current != nil && s.failure == nil {
		renewAt := s.renewalTime(s.current)
		result = lowestRequeue(result, ctrl.Result{RequeueAfter: max(renewAt.Sub(s.now), minRequeue)})
	}
	return result, nil
}

// finishReconcile ends every reconcile of an existing connection and reports its failure, which
// phaseFailed put in the scope, exactly once: it computes the whole status from the scope
// (conditions included), emits the failure's event, records the metrics, and patches the status
// only when it changed. A failed patch's error replaces the planned requeue: controller-runtime
// ignores a requeue returned with an error.
func (r *MauticConnectionReconciler) finishReconcile(ctx context.Context, s *scope, before *authv1alpha1.MauticConnection,
	result ctrl.Result, retErr error) (ctrl.Result, error) {
	conn := s.conn
	key := client.ObjectKeyFromObject(conn)
	if s.current != nil {
		s.renewAt = s.renewalTime(s.current)
	}
	computeStatus(s, retErr == nil)
	if s.failure != nil {
		r.event(conn, corev1.EventTypeWarning, s.failure.reason, actionFor(s.requestReason), "%s", s.failure.message)
	}
	recordConnectionMetrics(conn)
	if outcome, attempted := s.refreshResult(); attempted {
		recordRefreshResult(conn, outcome)
	}
	if equality.Semantic.DeepEqual(before.Status, conn.Status) || r.statuses.written(key, conn.UID, &conn.Status) {
		return result, retErr // a steady-state reconcile writes nothing, nor one that sees its own write not yet cached
	}
	if err := r.Client.Status().Patch(ctx, conn, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, kerrors.NewAggregate([]error{retErr, client.IgnoreNotFound(err)})
	}
	r.statuses.put(key, conn.UID, before.ResourceVersion, &conn.Status)
	return result, retErr
}

// reconcileCredentials normalises spec.url and reads the credentials Secret and the optional CA
// Secret, uncached, checking that the grant's keys are there, and hashes them.
// Sets Stalled with InvalidSpec, InvalidURL, CredentialsSecretNotFound, CredentialsNotOptedIn,
// CredentialsKeyMissing or CASecretInvalid.
func (r *MauticConnectionReconciler) reconcileCredentials(ctx context.Context, s *scope) (ctrl.Result, error) {
	if err := s.conn.Validate(); err != nil {
		// Stored before the CRD's validation refused it: this connection stalls, no other.
		return ctrl.Result{}, configurationError(authv1alpha1.InvalidSpecReason, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	baseURL, err := mautic.NormalizeURL(s.conn.Spec.URL)
	if err != nil {
		return ctrl.Result{}, configurationError(authv1alpha1.InvalidURLReason, fmt.Sprintf("spec.url is not usable: %v", err))
	}
	s.baseURL = baseURL
	s.connectionHash = connectionHash(s.conn, baseURL)
	if r.credentialsUnchanged(ctx, s) {
		return ctrl.Result{}, nil
	}
	return r.readCredentials(ctx, s)
}

// readCredentials reads the credentials Secret and the optional CA Secret uncached, checks that the
// grant's keys are there, hashes them and remembers them with the Secrets' versions.
func (r *MauticConnectionReconciler) readCredentials(ctx context.Context, s *scope) (ctrl.Result, error) {
	s.credentialsDeferred = false
	grant := s.conn.EffectiveGrant()
	ref := s.conn.Spec.CredentialsSecretRef.Name
	secret, err := r.readSecret(ctx, s.conn.Namespace, ref)
	if err != nil {
		return ctrl.Result{}, err
	}
	if secret == nil {
		return ctrl.Result{}, configurationError(authv1alpha1.CredentialsSecretNotFoundReason, fmt.Sprintf(
			"credentials Secret %s/%s not found: create it with the keys %s, or fix spec.credentialsSecretRef.name",
			s.conn.Namespace, ref, keyList(requiredKeys(grant))))
	}
	s.secretVersions = secretVersionOf(secret)
	if r.RequireCredentialsLabel && secret.Labels[authv1alpha1.CredentialsOptInLabel] != "true" {
		return ctrl.Result{}, configurationError(authv1alpha1.CredentialsNotOptedInReason, fmt.Sprintf(
			"credentials Secret %s/%s lacks the label %s=true, which this operator requires before it sends a Secret's "+
				"credentials anywhere: someone who may read that Secret labels it (kubectl label secret %s -n %s %s=true)",
			s.conn.Namespace, ref, authv1alpha1.CredentialsOptInLabel, ref, s.conn.Namespace, authv1alpha1.CredentialsOptInLabel))
	}
	creds, missing := credentialsFrom(grant, secret)
	if len(missing) > 0 {
		return ctrl.Result{}, configurationError(authv1alpha1.CredentialsKeyMissingReason, fmt.Sprintf(
			"credentials Secret %s/%s has no %s: grant %s needs the keys %s",
			s.conn.Namespace, ref, keyList(missing), grant, keyList(requiredKeys(grant))))
	}
	s.credentials = creds
	s.credentialsHash = creds.hash(grant)

	if tls := s.conn.Spec.TLS; tls != nil && tls.CASecretRef != nil {
		caCert, version, err := r.readCA(ctx, s.conn.Namespace, tls.CASecretRef.Name)
		if version != "" {
			s.secretVersions += "/" + version
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		s.caCert = caCert
	}
	r.credentialsMemory.put(client.ObjectKeyFromObject(s.conn), rememberedCredentials{
		uid: s.conn.UID, versions: s.secretVersions, credentials: s.credentials, hash: s.credentialsHash, caCert: s.caCert,
	})
	return ctrl.Result{}, nil
}

// readCA returns the bundle of a CA Secret and the Secret's version ("" when it is missing or
// could not be read). A bundle read before at the version the watch of Secret versions shows is not read
// again; otherwise the Secret is read uncached and, when usable, remembered for every connection
// that names it.
func (r *MauticConnectionReconciler) readCA(ctx context.Context, namespace, name string) ([]byte, string, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	if version, ok := r.watchedVersion(namespace, name); ok {
		if bundle, ok := r.caMemory.get(key, version); ok {
			return bundle, version, nil
		}
	}
	caSecret, err := r.readSecret(ctx, namespace, name)
	if err != nil {
		return nil, "", err
	}
	version := ""
	if caSecret != nil {
		version = secretVersionOf(caSecret)
	}
	caCert, problem := caCertFrom(caSecret)
	if problem != "" {
		return nil, version, configurationError(authv1alpha1.CASecretInvalidReason, fmt.Sprintf(
			"CA Secret %s/%s %s: put the PEM certificates of Mautic's CA in its key %s, or fix spec.tls.caSecretRef.name",
			namespace, name, problem, authv1alpha1.CACertKey))
	}
	r.caMemory.put(key, version, caCert)
	return caCert, version, nil
}

// reconcileToken runs the policy chain and, only when a policy fires, asks Mautic for a new token
// (Basic: verifies the credentials). Sets Stalled for configuration errors (retried at once when
// the spec or a Secret changes, else on a slow timer) and Reconciling for transient ones (retried with backoff while the current
// token stays published). Sets Stalled with TokenSecretConflict when the token Secret's name is taken.
func (r *MauticConnectionReconciler) reconcileToken(ctx context.Context, s *scope) (ctrl.Result, error) {
	live, conflict, err := r.readTokenSecret(ctx, s.conn)
	if err != nil {
		return ctrl.Result{}, err
	}
	if conflict {
		return ctrl.Result{}, configurationError(authv1alpha1.TokenSecretConflictReason, fmt.Sprintf(
			"Secret %s/%s exists and is not managed by this MauticConnection: delete it or set spec.tokenSecret.name to another name",
			s.conn.Namespace, s.conn.TokenSecretName()))
	}
	s.liveSecret = live
	if s.conn.EffectiveGrant() == authv1alpha1.GrantAuthorizationCode {
		s.refreshTokenIssuedAt = r.refreshTokenIssuedAt(ctx, s.conn)
	}
	known, modified := r.knownToken(s)
	s.current = known

	in := token.Input{
		Now:                       s.now,
		TokenSecretModified:       modified,
		CredentialsHash:           s.credentialsHash,
		ConnectionHash:            s.connectionHash,
		RefreshRequest:            s.refreshRequest,
		LastHandledRefreshRequest: s.conn.Status.LastHandledRefreshRequest,
	}
	if known != nil {
		in.Issued = &known.Issued
		in.RenewAt = s.renewalTime(known)
		if known.RefreshRequest == in.RefreshRequest {
			// Handled by the token we know, whatever a stale cached status says.
			in.LastHandledRefreshRequest = known.RefreshRequest
		}
	}
	reason, message, needed := token.TokenNeededChain.Evaluate(in)
	if !needed {
		return ctrl.Result{}, nil
	}
	if known != nil && s.now.Before(known.IssuedAt.Add(s.minTokenInterval)) {
		// Whatever the spec or the server says, one token request per interval: a tiny lifetime,
		// expires_in: 1 or a spec edited in a loop cannot make this connection hammer Mautic or
		// spend the manager's API budget.
		wait := known.IssuedAt.Add(s.minTokenInterval).Sub(s.now)
		logf.FromContext(ctx).V(1).Info("Token wanted sooner than the minimum interval; waiting", "reason", reason, "after", wait)
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if s.credentialsDeferred {
		// Trusted from the versions so far; a token request needs the credentials themselves.
		if result, err := r.readCredentials(ctx, s); err != nil {
			return result, err
		}
	}
	s.requestReason, s.requestMessage = reason, message
	logf.FromContext(ctx).Info("Requesting a new token", "reason", reason, "grant", s.conn.EffectiveGrant())

	obtained, verified, err := r.obtainToken(ctx, s)
	if err != nil {
		return ctrl.Result{}, &requestError{err: err}
	}
	obtained.RefreshRequest = in.RefreshRequest
	obtained.SecretVersions = s.secretVersions
	s.current, s.verified, s.issuedNow = obtained, verified, true
	r.memory.put(client.ObjectKeyFromObject(s.conn), s.conn.UID, obtained)
	return ctrl.Result{}, nil
}

// reconcileTokenSecret publishes the current token with server-side apply when the live Secret
// differs from it: after a new token, after a template change, or to repair a deleted or edited
// Secret from a token that is still valid. An expired token is never written back.
func (r *MauticConnectionReconciler) reconcileTokenSecret(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.current == nil || !s.current.valid(s.now) {
		return ctrl.Result{}, nil
	}
	if tokenSecretCurrent(s.liveSecret, s.conn, s.current) {
		return ctrl.Result{}, nil
	}
	apply := tokenSecretApply(s.conn, s.current)
	applyCtx := ctx
	if s.issuedNow {
		// A token Mautic just issued is published even when shutdown began meanwhile: the next
		// manager then finds it instead of asking Mautic again.
		var cancel context.CancelFunc
		applyCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), publishBudget)
		defer cancel()
	}
	if err := r.Client.Apply(applyCtx, apply, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return ctrl.Result{}, fmt.Errorf("applying token Secret %s/%s: %w", s.conn.Namespace, s.conn.TokenSecretName(), err)
	}

	log := logf.FromContext(ctx).WithValues("secret", klog.KRef(s.conn.Namespace, s.conn.TokenSecretName()))
	switch {
	case s.issuedNow:
		log.Info("Published a new token", "reason", s.requestReason, "expiresAt", s.current.ExpiresAt)
		r.event(s.conn, corev1.EventTypeNormal, readyReason(s.current), actionFor(s.requestReason),
			"%s: published a new token in Secret %s (%s)", s.requestReason, s.conn.TokenSecretName(), validityPhrase(s.current))
	case s.liveSecret == nil || !tokenDataEqual(s.liveSecret, s.current):
		log.Info("Repaired the token Secret from the current token")
		r.event(s.conn, corev1.EventTypeNormal, authv1alpha1.TokenSecretRepairedReason, "Repair",
			"restored Secret %s from the current token (%s), without a new token request", s.conn.TokenSecretName(), validityPhrase(s.current))
	default:
		log.V(1).Info("Updated the token Secret's metadata")
	}
	return ctrl.Result{}, nil
}

// obtainToken asks Mautic for a token with the connection's grant, and verifies it when asked to.
// Basic credentials have no token endpoint: they are verified against the API instead.
// AuthorizationCode spends and rotates the stored refresh token (see refreshWithRotation).
func (r *MauticConnectionReconciler) obtainToken(ctx context.Context, s *scope) (*issuedToken, *mautic.VerifyResult, error) {
	site := mautic.Site{BaseURL: s.baseURL, CACert: s.caCert, AllowInsecureHTTP: s.conn.Spec.AllowInsecureHTTP}
	issued := token.Issued{IssuedAt: s.now, CredentialsHash: s.credentialsHash, ConnectionHash: s.connectionHash}

	grant := s.conn.EffectiveGrant()
	if grant == authv1alpha1.GrantBasic {
		authorization := mautic.BasicAuthorization(s.credentials.username, s.credentials.password)
		verified, err := r.Mautic.Verify(ctx, mautic.VerifyRequest{Site: site, Path: verifyPath(s.conn), Authorization: authorization})
		if err != nil {
			return nil, nil, err
		}
		return &issuedToken{Issued: issued, Authorization: authorization, TokenType: authv1alpha1.TokenTypeBasic, URL: s.baseURL}, verified, nil
	}

	req := mautic.TokenRequest{
		Site:         site,
		ClientID:     s.credentials.clientID,
		ClientSecret: s.credentials.clientSecret,
		TokenPath:    s.conn.Spec.TokenPath,
		Scopes:       s.conn.Spec.Scopes,
	}
	var obtained *mautic.Token
	var err error
	switch grant {
	case authv1alpha1.GrantClientCredentials:
		req.Grant = mautic.GrantClientCredentials
		obtained, err = r.Mautic.Token(ctx, req)
	case authv1alpha1.GrantPassword:
		req.Grant, req.Username, req.Password = mautic.GrantPassword, s.credentials.username, s.credentials.password
		obtained, err = r.Mautic.Token(ctx, req)
	case authv1alpha1.GrantAuthorizationCode:
		obtained, err = r.refreshWithRotation(ctx, s, req)
	default:
		err = configurationError(authv1alpha1.RequestRejectedReason, fmt.Sprintf("grant %q is not supported by this operator version", grant))
	}
	if err != nil {
		return nil, nil, err
	}
	// Checked only now, after a rotated refresh token in the same answer was persisted: an access
	// token with a CR LF would inject headers into every workload that builds one from it.
	if err := mautic.CheckAccessToken(obtained.AccessToken); err != nil {
		return nil, nil, configurationError(authv1alpha1.RequestRejectedReason, fmt.Sprintf(
			"the token endpoint issued an access token that cannot be published (%v): check that spec.url and spec.tokenPath "+
				"point at the OAuth2 server", err))
	}

	lifetime := obtained.ExpiresIn
	if lifetime <= 0 {
		lifetime = defaultAccessTokenLifetime
	}
	issued.ExpiresAt = s.now.Add(lifetime).Truncate(time.Second)
	t := &issuedToken{
		Issued:        issued,
		AccessToken:   obtained.AccessToken,
		Authorization: mautic.BearerAuthorization(obtained.AccessToken),
		TokenType:     authv1alpha1.TokenTypeBearer,
		URL:           s.baseURL,
	}
	if s.conn.Spec.Verify == nil {
		return t, nil, nil
	}
	verified, err := r.Mautic.Verify(ctx, mautic.VerifyRequest{Site: site, Path: verifyPath(s.conn), Authorization: t.Authorization})
	if err != nil {
		return nil, nil, err
	}
	return t, verified, nil
}

// knownToken returns the token the operator published for this connection: from the token Secret
// when it is intact and at least as new as the remembered one, else the remembered one (to repair
// the Secret). modified reports a token Secret that exists but holds no trustworthy token.
func (r *MauticConnectionReconciler) knownToken(s *scope) (known *issuedToken, modified bool) {
	fromSecret := issuedFromSecret(s.liveSecret)
	remembered := r.memory.get(client.ObjectKeyFromObject(s.conn), s.conn.UID)
	switch {
	case fromSecret != nil && (remembered == nil || !fromSecret.IssuedAt.Before(remembered.IssuedAt)):
		// Remember it, so that a restarted manager can restore a deleted Secret without a new token.
		r.memory.put(client.ObjectKeyFromObject(s.conn), s.conn.UID, fromSecret)
		return fromSecret, false
	case remembered != nil:
		return remembered, false
	default:
		return nil, s.liveSecret != nil
	}
}

// readTokenSecret reads the token Secret from the cache, which holds only managed Secrets. When it
// is not there and the watch of Secret versions has a Secret of that name, an uncached read tells a managed
// Secret not yet cached from one that exists without the operator's label; such a Secret, or one
// controlled by another object, is a conflict the operator will not overwrite.
func (r *MauticConnectionReconciler) readTokenSecret(ctx context.Context, conn *authv1alpha1.MauticConnection) (*corev1.Secret, bool, error) {
	key := types.NamespacedName{Namespace: conn.Namespace, Name: conn.TokenSecretName()}
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, key, secret)
	switch {
	case err == nil:
		owner := controllerUID(secret)
		return secret, owner != "" && owner != conn.UID, nil
	case !apierrors.IsNotFound(err):
		return nil, false, fmt.Errorf("reading token Secret %s: %w", key, err)
	}
	if r.watchedAbsent(conn.Namespace, key.Name) {
		// No Secret of that name at all: nothing to read. (One created since the watch last saw the
		// namespace is no more protected by a read here, which would race the write just the same.)
		return nil, false, nil
	}
	unmanaged, err := r.readSecret(ctx, conn.Namespace, key.Name)
	if err != nil {
		return nil, false, err
	}
	if unmanaged != nil && unmanaged.Labels[authv1alpha1.ManagedByLabel] != authv1alpha1.ManagedByValue {
		return nil, true, nil
	}
	// Either missing, or managed but not yet in the cache: applying it is safe in both cases.
	return nil, false, nil
}

// readSecret reads a Secret uncached; a missing Secret is (nil, nil).
func (r *MauticConnectionReconciler) readSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	return secret, nil
}

// renewalTime returns when t is due for renewal, never sooner than the minimum interval between
// token requests after it was issued.
func (s *scope) renewalTime(t *issuedToken) time.Time {
	renewAt := renewAtFor(s.conn, t, s.refreshTokenIssuedAt)
	if earliest := t.IssuedAt.Add(s.minTokenInterval); renewAt.Before(earliest) {
		return earliest
	}
	return renewAt
}

// renewAtFor returns when t is due for renewal under the connection's refresh settings, with the
// connection's own jitter. For AuthorizationCode it is also early enough that the refresh token,
// issued at refreshTokenIssuedAt, never lapses, however long the access tokens live.
func renewAtFor(conn *authv1alpha1.MauticConnection, t *issuedToken, refreshTokenIssuedAt time.Time) time.Time {
	lifetime := t.ExpiresAt.Sub(t.IssuedAt)
	renewAt := token.RenewAt(t.IssuedAt, t.ExpiresAt, renewalPolicy(conn), token.Jitter(string(conn.UID), lifetime))
	if conn.EffectiveGrant() != authv1alpha1.GrantAuthorizationCode || refreshTokenIssuedAt.IsZero() {
		return renewAt
	}
	refreshLifetime := refreshTokenLifetime(conn)
	keepAlive := token.RenewAt(refreshTokenIssuedAt, refreshTokenIssuedAt.Add(refreshLifetime), token.RenewalPolicy{},
		token.Jitter(string(conn.UID), refreshLifetime))
	if keepAlive.Before(renewAt) {
		return keepAlive
	}
	return renewAt
}

// event emits a Kubernetes event on the connection when a recorder is configured.
// The note is cut to fit: the API server refuses an event whose note exceeds 1 KiB, and a long
// warning would otherwise vanish.
func (r *MauticConnectionReconciler) event(conn *authv1alpha1.MauticConnection, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(conn, nil, eventType, reason, action, "%s", clipNote(fmt.Sprintf(note, args...)))
	}
}

// maxRefreshRequestBytes bounds the refresh request the status records (its field has a maxLength).
const maxRefreshRequestBytes = 128

// refreshRequest returns the refresh-requested-at annotation's value as the status records it: a
// value longer than maxRefreshRequestBytes stands for itself by its digest.
func refreshRequest(conn *authv1alpha1.MauticConnection) string {
	value := conn.Annotations[authv1alpha1.RefreshRequestedAtAnnotation]
	if len(value) <= maxRefreshRequestBytes {
		return value
	}
	return "sha256:" + hashOf(value)
}

// maxEventNoteBytes is the longest note the API server accepts on an event.
const maxEventNoteBytes = 1024

// clipNote cuts note to maxEventNoteBytes on a rune boundary, marking the cut with "…".
func clipNote(note string) string {
	if len(note) <= maxEventNoteBytes {
		return note
	}
	const ellipsis = "…"
	cut := maxEventNoteBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + ellipsis
}

// serverClock returns the API server's clock, or the reconciler's when none is configured.
func (r *MauticConnectionReconciler) serverClock() clock.PassiveClock {
	if r.ServerClock != nil {
		return r.ServerClock
	}
	return r.Clock
}

// pendingStore returns the store of rotated refresh tokens not yet persisted.
func (r *MauticConnectionReconciler) pendingStore() *pending.Store {
	r.pendingOnce.Do(func() {
		if r.Pending == nil {
			r.Pending, _ = pending.Open("") // in memory: cannot fail
		}
	})
	return r.Pending
}

// DefaultMinTokenInterval is the default least time between two token requests of one connection.
const DefaultMinTokenInterval = time.Minute

// minTokenInterval returns the least time between two token requests of one connection.
func (r *MauticConnectionReconciler) minTokenInterval() time.Duration {
	switch {
	case r.MinTokenInterval < 0:
		return 0
	case r.MinTokenInterval == 0:
		return DefaultMinTokenInterval
	default:
		return r.MinTokenInterval
	}
}

// mauticTimeout returns the Mautic client's timeout per request.
func (r *MauticConnectionReconciler) mauticTimeout() time.Duration {
	if r.MauticTimeout > 0 {
		return r.MauticTimeout
	}
	return mautic.DefaultTimeout
}

// claimTTL returns how long another manager's refresh claim blocks a refresh.
func (r *MauticConnectionReconciler) claimTTL() time.Duration {
	if r.ClaimTTL > 0 {
		return r.ClaimTTL
	}
	return DefaultClaimTTL
}

// lowestRequeue combines two phase results, keeping the earliest requeue.
func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	switch {
	case a.RequeueAfter == 0:
		return b
	case b.RequeueAfter == 0 || a.RequeueAfter <= b.RequeueAfter:
		return a
	default:
		return b
	}
}
