package controller

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestNamespaceShare(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	g.Expect(shareOf(16)).To(Equal(12))
	g.Expect(shareOf(1)).To(Equal(1), "a single worker serves everyone")

	var share namespaceShare
	limit := shareOf(4)
	for range limit {
		g.Expect(share.enter("busy", limit)).To(BeTrue())
	}
	g.Expect(share.enter("busy", limit)).To(BeFalse(), "the busy namespace holds its share")
	g.Expect(share.enter("quiet", limit)).To(BeTrue(), "another namespace gets the worker left")
	share.leave("busy")
	g.Expect(share.enter("busy", limit)).To(BeTrue())
	share.leave("quiet")
	g.Expect(share.inFlight).NotTo(HaveKey("quiet"), "an idle namespace is forgotten")

	delay := fairnessDelay("busy", "crm")
	g.Expect(delay).To(BeNumerically(">=", fairnessRetry))
	g.Expect(delay).To(BeNumerically("<", 2*fairnessRetry))
	g.Expect(fairnessDelay("busy", "crm")).To(Equal(delay), "stable per connection")
}
