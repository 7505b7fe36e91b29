package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// A reconcile that reads the connection as it was before the operator's last status write computes
// from that write, so the condition times it already wrote stay and nothing is written again.
func TestStatusMemoryCatchUp(t *testing.T) {
	t.Parallel()
	written := authv1alpha1.MauticConnectionStatus{Conditions: []metav1.Condition{{
		Type: authv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: authv1alpha1.TokenValidReason,
		LastTransitionTime: metav1.NewTime(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)),
	}}}
	tests := []struct {
		name            string
		uid             string
		resourceVersion string
		wantCaughtUp    bool
	}{
		{name: "the object the write was made over", uid: "u1", resourceVersion: "10", wantCaughtUp: true},
		{name: "the object after the write", uid: "u1", resourceVersion: "11"},
		{name: "another object of the same name", uid: "u2", resourceVersion: "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m statusMemory
			key := types.NamespacedName{Namespace: "ns", Name: "crm"}
			m.put(key, "u1", "10", &written)
			conn := &authv1alpha1.MauticConnection{ObjectMeta: metav1.ObjectMeta{
				Namespace: "ns", Name: "crm", UID: types.UID(tt.uid), ResourceVersion: tt.resourceVersion,
			}}
			m.catchUp(conn)
			if got := len(conn.Status.Conditions) == 1; got != tt.wantCaughtUp {
				t.Fatalf("caught up = %v, want %v (status %+v)", got, tt.wantCaughtUp, conn.Status)
			}
			if tt.wantCaughtUp {
				conn.Status.Conditions[0].Reason = "changed"
				if written.Conditions[0].Reason != authv1alpha1.TokenValidReason {
					t.Fatal("catchUp handed out the remembered status itself, not a copy")
				}
			}
		})
	}
}
