package refreshstate_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/refreshstate"
)

// TestStateWrites: the operator's rotation (SetRefreshToken) and the plugin's authorization
// (SetAuthorized) build the state Secret alike: the same labels, controller reference, data and
// issue time; the bookkeeping about the replaced token goes; the authorization adds its time and
// records the seed it supersedes.
func TestStateWrites(t *testing.T) {
	t.Parallel()
	conn := &authv1alpha1.MauticConnection{ObjectMeta: metav1.ObjectMeta{Name: "crm", Namespace: "shop", UID: "uid-1"}}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name            string
		write           func(state *corev1.Secret)
		wantAuthorized  bool
		wantSeedUsedFor string
	}{
		{name: "rotation", write: func(state *corev1.Secret) { refreshstate.SetRefreshToken(state, conn, "rotated", now) }},
		{name: "authorization with a seed", write: func(state *corev1.Secret) { refreshstate.SetAuthorized(state, conn, "rotated", "seed", now) },
			wantAuthorized: true, wantSeedUsedFor: "seed"},
		{name: "authorization without a seed", write: func(state *corev1.Secret) { refreshstate.SetAuthorized(state, conn, "rotated", "", now) },
			wantAuthorized: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			state := refreshstate.New(conn)
			state.Annotations = map[string]string{authv1alpha1.SeedHashAnnotation: refreshstate.Digest("old seed")}
			refreshstate.SetClaim(state, "manager-a", now)
			refreshstate.SetRejected(state, "stored")
			refreshstate.SetAmbiguous(state, "stored", now, "timeout")

			tt.write(state)

			g.Expect(state.Name).To(Equal("crm" + authv1alpha1.StateSecretSuffix))
			g.Expect(state.Labels).To(Equal(map[string]string{
				authv1alpha1.ManagedByLabel: authv1alpha1.ManagedByValue, authv1alpha1.ConnectionLabel: "crm",
			}))
			g.Expect(state.OwnerReferences).To(Equal([]metav1.OwnerReference{*conn.ControllerReference()}))
			g.Expect(refreshstate.ControlledBy(state, conn)).To(BeTrue())
			g.Expect(refreshstate.RefreshToken(state)).To(Equal("rotated"))
			g.Expect(state.Data).To(HaveLen(1))
			g.Expect(refreshstate.IssuedAt(state)).To(Equal(now))
			_, claimed := refreshstate.ClaimOf(state)
			g.Expect(claimed).To(BeFalse())
			g.Expect(refreshstate.Rejected(state)).To(BeFalse())
			g.Expect(state.Annotations).NotTo(HaveKey(authv1alpha1.AmbiguousRefreshAnnotation))
			if tt.wantAuthorized {
				g.Expect(state.Annotations).To(HaveKeyWithValue(authv1alpha1.AuthorizedAtAnnotation, "2025-03-01T12:00:00Z"))
			} else {
				g.Expect(state.Annotations).NotTo(HaveKey(authv1alpha1.AuthorizedAtAnnotation))
			}
			if tt.wantSeedUsedFor != "" {
				g.Expect(refreshstate.SeedUsed(state, tt.wantSeedUsedFor)).To(BeTrue())
			} else {
				g.Expect(refreshstate.SeedUsed(state, "old seed")).To(BeTrue(), "the seed hash is kept")
			}
		})
	}
}
