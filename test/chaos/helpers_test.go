package chaos

import (
	"math"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// The report's figures come from these helpers; they are checked on fixed input.

func TestParseMetricsAndQuantiles(t *testing.T) {
	g := NewWithT(t)
	text := `# HELP leader_election_master_status Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.
# TYPE leader_election_master_status gauge
leader_election_master_status{name="mautic-operator.auth.mautic-operator.dev"} 1
# TYPE mautic_operator_refresh_token_unpersisted_seconds histogram
mautic_operator_refresh_token_unpersisted_seconds_bucket{le="0.001"} 50
mautic_operator_refresh_token_unpersisted_seconds_bucket{le="0.005"} 90
mautic_operator_refresh_token_unpersisted_seconds_bucket{le="0.01"} 100
mautic_operator_refresh_token_unpersisted_seconds_bucket{le="+Inf"} 100
mautic_operator_refresh_token_unpersisted_seconds_sum 0.2
mautic_operator_refresh_token_unpersisted_seconds_count 100
`
	snap, err := parseMetrics(strings.NewReader(text))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(snap.leader).To(BeTrue())
	h := snap.window
	g.Expect(h.count).To(Equal(100.0))
	g.Expect(h.bounds).To(HaveLen(4))
	g.Expect(math.IsInf(h.bounds[3], 1)).To(BeTrue())
	g.Expect(h.quantile(0.5)).To(BeNumerically("~", 0.001, 1e-9))
	g.Expect(h.quantile(0.25)).To(BeNumerically("~", 0.0005, 1e-9))
	g.Expect(h.quantile(0.99)).To(BeNumerically("~", 0.0095, 1e-9))
	g.Expect(h.bucketOf(0.99)).To(Equal(0.01))

	sum := h.add(h)
	g.Expect(sum.count).To(Equal(200.0))
	g.Expect(sum.cumulative[0]).To(Equal(100.0))
	g.Expect(h.cumulative[0]).To(Equal(50.0), "add leaves its operands alone")
	g.Expect(math.IsNaN(histogram{}.quantile(0.5))).To(BeTrue())

	inf := histogram{bounds: []float64{1, math.Inf(1)}, cumulative: []float64{0, 3}, count: 3}
	g.Expect(math.IsInf(inf.quantile(0.5), 1)).To(BeTrue())
}

func TestReportFormatting(t *testing.T) {
	g := NewWithT(t)
	g.Expect(thousands(0)).To(Equal("0"))
	g.Expect(thousands(999)).To(Equal("999"))
	g.Expect(thousands(1234567)).To(Equal("1,234,567"))
	g.Expect(seconds(0.00042)).To(Equal("0.42 ms"))
	g.Expect(seconds(2.5)).To(Equal("2.5 s"))
	g.Expect(countsText(map[string]int{"b": 2, "a": 1})).To(Equal(" (a: 1, b: 2)"))
}
