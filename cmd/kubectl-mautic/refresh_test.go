package main

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

func TestRefresh(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	now := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC)
	f.clock = clocktesting.NewFakePassiveClock(now)
	conn := f.createConnection("crm", authv1alpha1.GrantClientCredentials, func(c *authv1alpha1.MauticConnection) {
		c.Annotations = map[string]string{"team": "growth"}
	})

	stdout, stderr, code := f.run("refresh", "crm", "-n", f.ns)
	g.Expect(code).To(Equal(exitOK), stderr)
	g.Expect(stdout).To(HavePrefix(fmt.Sprintf("Requested a refresh of MauticConnection %s/crm (%s=2026-05-01T10:00:00.123456789Z)",
		f.ns, authv1alpha1.RefreshRequestedAtAnnotation)))

	updated := &authv1alpha1.MauticConnection{}
	g.Expect(k8sClient.Get(f.ctx, keyOf(conn), updated)).To(Succeed())
	g.Expect(updated.Annotations).To(Equal(map[string]string{
		"team": "growth",
		authv1alpha1.RefreshRequestedAtAnnotation: "2026-05-01T10:00:00.123456789Z",
	}))
	g.Expect(updated.Generation).To(Equal(conn.Generation), "an annotation is no spec change")

	// A later request is a new value, which the operator treats as a new request.
	f.clock = clocktesting.NewFakePassiveClock(now.Add(time.Minute))
	_, stderr, code = f.run("refresh", "crm", "-n", f.ns)
	g.Expect(code).To(Equal(exitOK), stderr)
	g.Expect(k8sClient.Get(f.ctx, keyOf(conn), updated)).To(Succeed())
	g.Expect(updated.Annotations).To(HaveKeyWithValue(authv1alpha1.RefreshRequestedAtAnnotation, "2026-05-01T10:01:00.123456789Z"))
}
