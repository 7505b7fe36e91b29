package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
)

func TestConfigurationRetriesBackOffAndStartAgainOnChange(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var retries configurationRetries
	key := types.NamespacedName{Namespace: "shop", Name: "crm"}
	delays := make([]time.Duration, 0, 9)
	for range 9 {
		delays = append(delays, retries.next(key, "generation 1", 45*time.Second))
	}
	g.Expect(delays).To(Equal([]time.Duration{
		45 * time.Second, 90 * time.Second, 3 * time.Minute, 6 * time.Minute, 12 * time.Minute,
		24 * time.Minute, 48 * time.Minute, time.Hour, time.Hour,
	}))
	g.Expect(retries.next(key, "generation 2", 45*time.Second)).To(Equal(45*time.Second), "a changed input starts again")
	retries.forget(key)
	g.Expect(retries.next(key, "generation 2", 45*time.Second)).To(Equal(45 * time.Second))
}
