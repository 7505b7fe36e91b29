package apiclock_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mautic-operator/mautic-operator/internal/apiclock"
)

func TestClockFollowsTheServersDateHeader(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	local := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC))
	c := apiclock.New(local)
	g.Expect(c.Now()).To(Equal(local.Now()), "the local clock until an answer is seen")

	// The server is 10 minutes ahead of this node.
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Date", local.Now().Add(10*time.Minute).UTC().Format(http.TimeFormat))
	}))
	defer server.Close()
	client := &http.Client{Transport: c.Wrap(http.DefaultTransport)}
	resp, err := client.Get(server.URL) //nolint:noctx // a test request to a local server
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()

	g.Expect(c.Now()).To(BeTemporally("~", local.Now().Add(10*time.Minute), time.Second))
	local.SetTime(local.Now().Add(time.Minute))
	g.Expect(c.Since(local.Now().Add(10 * time.Minute))).To(BeNumerically("~", 0, time.Second))
}

func TestClockIgnoresAnUnreadableDate(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	local := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC))
	c := apiclock.New(local)
	c.Observe("yesterday", local.Now())
	g.Expect(c.Now()).To(Equal(local.Now()))
}
