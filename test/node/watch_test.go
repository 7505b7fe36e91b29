package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// connectionWatch polls the connections and their token Secrets every half second for as long as
// a test runs, recording every moment a connection was not Ready, every refresh (a new
// status.lastRefreshTime) with the renewal time planned before it, and when each published
// token was issued.
type connectionWatch struct {
	b     *bed
	conns []*connection

	mu       sync.Mutex
	notReady []string             // descriptions of the observations of a connection not Ready
	refresh  []refreshEvent       // every refresh seen
	issued   map[string]time.Time // token digest -> its issued-at annotation
	last     map[client.ObjectKey]authv1alpha1.MauticConnectionStatus
}

// refreshEvent is one refresh of a connection.
type refreshEvent struct {
	key client.ObjectKey
	// at is the new status.lastRefreshTime; plannedAt the status.renewAt seen before it.
	at, plannedAt time.Time
}

// watchConnections starts a connectionWatch that stops when the test ends.
func (b *bed) watchConnections(t *testing.T, conns ...*connection) *connectionWatch {
	w := &connectionWatch{b: b, conns: conns, issued: map[string]time.Time{}, last: map[client.ObjectKey]authv1alpha1.MauticConnectionStatus{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			w.poll(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	w.poll(t.Context())
	return w
}

// poll records one observation of every connection.
func (w *connectionWatch) poll(ctx context.Context) {
	for _, c := range w.conns {
		conn := &authv1alpha1.MauticConnection{}
		if err := w.b.client.Get(ctx, c.key, conn); err != nil {
			continue // a failed read tells nothing about the connection
		}
		secret := &corev1.Secret{}
		secretErr := w.b.client.Get(ctx, client.ObjectKey{Namespace: c.key.Namespace, Name: c.tokenSecret}, secret)
		w.mu.Lock()
		ready := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReadyCondition)
		if ready == nil || ready.Status != metav1.ConditionTrue {
			desc := "no Ready condition"
			if ready != nil {
				desc = fmt.Sprintf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message)
			}
			w.notReady = append(w.notReady, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05.000"), c.key, desc))
		}
		prev, seen := w.last[c.key]
		if seen && conn.Status.LastRefreshTime != nil && (prev.LastRefreshTime == nil || !conn.Status.LastRefreshTime.Equal(prev.LastRefreshTime)) {
			ev := refreshEvent{key: c.key, at: conn.Status.LastRefreshTime.Time}
			if prev.RenewAt != nil {
				ev.plannedAt = prev.RenewAt.Time
			}
			w.refresh = append(w.refresh, ev)
		}
		w.last[c.key] = conn.Status
		if secretErr == nil {
			if at, err := time.Parse(time.RFC3339Nano, secret.Annotations[authv1alpha1.TokenIssuedAtAnnotation]); err == nil {
				w.issued[tokenDigest(secret.Data[authv1alpha1.AuthorizationKey])] = at
			}
		}
		w.mu.Unlock()
	}
}

// quietMoment reports whether no connection is near a refresh at now: each was last refreshed
// more than two seconds ago (lastRefreshTime has a resolution of one second) and renews no sooner
// than margin from now. A window of counts that starts at such a moment holds no refresh whose
// token request came before it.
func (w *connectionWatch) quietMoment(now time.Time, margin time.Duration) (bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.conns {
		st, ok := w.last[c.key]
		switch {
		case !ok || st.LastRefreshTime == nil || st.RenewAt == nil:
			return false, fmt.Sprintf("%s has no refresh yet", c.key)
		case now.Sub(st.LastRefreshTime.Time) < 2*time.Second:
			return false, fmt.Sprintf("%s was refreshed at %s", c.key, st.LastRefreshTime.Format(time.RFC3339))
		case st.RenewAt.Sub(now) < margin:
			return false, fmt.Sprintf("%s renews at %s", c.key, st.RenewAt.Format(time.RFC3339))
		}
	}
	return true, ""
}

// notReadySeen returns the observations of a connection not Ready so far.
func (w *connectionWatch) notReadySeen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.notReady...)
}

// refreshesBetween returns the refreshes whose lastRefreshTime lies in [from, to].
func (w *connectionWatch) refreshesBetween(from, to time.Time) []refreshEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []refreshEvent
	for _, ev := range w.refresh {
		// lastRefreshTime has a resolution of one second.
		if !ev.at.Before(from.Truncate(time.Second)) && !ev.at.After(to) {
			out = append(out, ev)
		}
	}
	return out
}

// issuedAt returns when the token with digest was issued, as its token Secret said.
func (w *connectionWatch) issuedAt(digest string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.issued[digest]
	return at, ok
}
