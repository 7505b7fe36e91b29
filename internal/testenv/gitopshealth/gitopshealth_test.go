package gitopshealth_test

import (
	"testing"

	. "github.com/onsi/gomega"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/testenv/gitopshealth"
)

// TestHealth: hand-written objects get the Argo CD health and kstatus that test/gitops sees on
// live ones, without a control plane.
func TestHealth(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		status                      map[string]any
		wantArgoCD, wantArgoMessage string
		wantKstatus                 kstatus.Status
	}{
		"not observed yet": {
			wantArgoCD: "Progressing", wantArgoMessage: "Waiting for the operator to observe generation 1",
			wantKstatus: kstatus.CurrentStatus, // kstatus needs status.observedGeneration to judge
		},
		"ready": {
			status: map[string]any{"observedGeneration": int64(1), "conditions": []any{
				condition(authv1alpha1.ReadyCondition, "True", authv1alpha1.TokenValidReason, "Token valid"),
			}},
			wantArgoCD: "Healthy", wantArgoMessage: "Token valid", wantKstatus: kstatus.CurrentStatus,
		},
		"stalled": {
			status: map[string]any{"observedGeneration": int64(1), "conditions": []any{
				condition(authv1alpha1.ReadyCondition, "False", authv1alpha1.InvalidClientReason, "Refused"),
				condition(authv1alpha1.StalledCondition, "True", authv1alpha1.InvalidClientReason, "Refused"),
			}},
			wantArgoCD: "Degraded", wantArgoMessage: authv1alpha1.InvalidClientReason + ": Refused", wantKstatus: kstatus.FailedStatus,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			obj := connection()
			if tc.status != nil {
				obj["status"] = tc.status
			}
			status, message, err := gitopshealth.ArgoCDHealth(obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect([]string{status, message}).To(Equal([]string{tc.wantArgoCD, tc.wantArgoMessage}))
			result, err := gitopshealth.KStatus(obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(result.Status).To(Equal(tc.wantKstatus), result.Message)
		})
	}
}

// TestActions: discovery offers refresh, whose script returns a changed copy and leaves its input
// alone; an action without a script is an error.
func TestActions(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	obj := connection()
	g.Expect(gitopshealth.ArgoCDActions(obj)).To(Equal(map[string]any{"refresh": map[string]any{"disabled": false}}))

	modified, err := gitopshealth.ArgoCDAction(obj, "refresh")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(modified).To(HaveKeyWithValue("metadata", HaveKeyWithValue("annotations",
		HaveKey(authv1alpha1.RefreshRequestedAtAnnotation))))
	g.Expect(obj).To(Equal(connection()), "the input object is unchanged")

	_, err = gitopshealth.ArgoCDAction(obj, "no-such-action")
	g.Expect(err).To(HaveOccurred())
}

// connection returns a MauticConnection at generation 1 with no status, as unstructured content.
func connection() map[string]any {
	return map[string]any{
		"apiVersion": authv1alpha1.GroupVersion.String(),
		"kind":       "MauticConnection",
		"metadata":   map[string]any{"name": "crm", "namespace": "default", "generation": int64(1)},
		"spec":       map[string]any{"url": "https://mautic.example.com"},
	}
}

// condition returns a status condition as unstructured content.
func condition(conditionType, status, reason, message string) map[string]any {
	return map[string]any{"type": conditionType, "status": status, "reason": reason, "message": message}
}
