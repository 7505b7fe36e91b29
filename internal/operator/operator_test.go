package operator

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/mautic-operator/mautic-operator/internal/controller"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
)

// managerDeployment reads the Deployment of config/manager.
func managerDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatalf("reading the manager manifest: %v", err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		deployment := &appsv1.Deployment{}
		if err := yaml.Unmarshal(doc, deployment); err == nil && deployment.Kind == "Deployment" {
			return deployment
		}
	}
	t.Fatal("config/manager/manager.yaml holds no Deployment")
	return nil
}

// A rollout must let a refresh that claimed its refresh token finish: the kubelet's grace period
// exceeds the manager's graceful shutdown, which exceeds the refresh's critical section.
func TestDeploymentOutlastsAClaimedRefresh(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	deployment := managerDeployment(t)
	pod := deployment.Spec.Template.Spec
	critical := controller.CriticalSectionTimeout(mautic.DefaultTimeout)
	graceful := critical + shutdownMargin
	g.Expect(graceful).To(BeNumerically(">", critical))
	g.Expect(pod.TerminationGracePeriodSeconds).NotTo(BeNil())
	g.Expect(time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second).To(BeNumerically(">", graceful+shutdownMargin),
		"terminationGracePeriodSeconds must exceed the graceful shutdown (%s) and the drain after it", graceful)

	// The pending directory is a flag pointing into an emptyDir volume.
	container := pod.Containers[0]
	index := slices.IndexFunc(container.Args, func(arg string) bool { return strings.HasPrefix(arg, "--pending-refresh-token-dir=") })
	g.Expect(index).NotTo(Equal(-1), "the manager keeps unpersisted refresh tokens on disk")
	dir := strings.TrimPrefix(container.Args[index], "--pending-refresh-token-dir=")
	mount := slices.IndexFunc(container.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	g.Expect(mount).NotTo(Equal(-1), "the pending directory is a mounted volume (the root filesystem is read-only)")
	volume := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == container.VolumeMounts[mount].Name })
	g.Expect(volume).NotTo(Equal(-1))
	g.Expect(pod.Volumes[volume].EmptyDir).NotTo(BeNil(), "an emptyDir outlives container restarts")
}

// Each shard elects its own leader; a manager that serves every connection keeps the one Lease.
func TestLeaderElectionIDPerShard(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	g.Expect(leaderElectionID(nil)).To(Equal(LeaderElectionID))
	g.Expect(leaderElectionID(labels.Everything())).To(Equal(LeaderElectionID))
	a := leaderElectionID(labels.SelectorFromSet(labels.Set{"shard": "a"}))
	b := leaderElectionID(labels.SelectorFromSet(labels.Set{"shard": "b"}))
	g.Expect(a).NotTo(Equal(b))
	g.Expect(a).To(HaveSuffix("." + LeaderElectionID))
	g.Expect(len(a)).To(BeNumerically("<=", 63), "a Lease name must fit a DNS label")
}
