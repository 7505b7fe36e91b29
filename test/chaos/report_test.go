package chaos

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// machine describes the machine the run had.
type machine struct {
	cpus    int
	model   string
	kernel  string
	goVer   string
	loadAvg string
}

func readMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVer: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if key, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(key) == "model name" {
				m.model = strings.TrimSpace(value)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fields := strings.Fields(string(data))
		if len(fields) >= 3 {
			m.loadAvg = strings.Join(fields[:3], " ")
		}
	}
	return m
}

// runReport is everything the report says.
type runReport struct {
	cfg                   config
	machine, machineAfter machine
	chaos, settle         time.Duration
	settled               bool
	rotations, grants     int
	reused                int
	tracker               *tracker
	driver                *driver
	window                histogram
	processes             int
	crashes               []exit
	pendingKept           []string
	unresolved            []string
	panics                []string
}

// eventsOf returns the events of kind k.
func (r *runReport) eventsOf(k *kind) []*event {
	var list []*event
	for _, e := range r.tracker.events {
		if e.kind == k {
			list = append(list, e)
		}
	}
	return list
}

// lossesOf counts the losses attributed to events of kind k.
func (r *runReport) lossesOf(k *kind) int {
	n := 0
	for _, l := range r.tracker.losses {
		if l.event != nil && l.event.kind == k {
			n++
		}
	}
	return n
}

// faultsMet counts the token requests that met the faults of events of kind k.
func (r *runReport) faultsMet(k *kind) int {
	n := 0
	for _, e := range r.eventsOf(k) {
		n += e.faultsMet
	}
	return n
}

// violations describes every loss the operator must not have had.
func (r *runReport) violations() []string {
	var list []string
	for _, l := range r.tracker.losses {
		if l.expected == "" {
			list = append(list, l.describe())
		}
	}
	return list
}

// lossesRevealedByRefusal counts the losses that only Mautic's refusal of the spent token could
// reveal: those of every kind but a 2xx answer without a refresh token, after which the operator
// knows that Mautic rotated and must not send the token again.
func (r *runReport) lossesRevealedByRefusal() int {
	n := 0
	for _, l := range r.tracker.losses {
		if l.event == nil || l.event.kind.name != "mautic-unusable-notoken" {
			n++
		}
	}
	return n
}

// resentAfterUnusable estimates how often the operator sent a token again after a 2xx answer
// without a refresh token: the reused tokens beyond one per loss that a refusal had to reveal.
func (r *runReport) resentAfterUnusable() int {
	return max(0, r.reused-r.lossesRevealedByRefusal())
}

// describe renders a loss for the test log and the report.
func (l loss) describe() string {
	event := "no event before it"
	if l.event != nil {
		event = fmt.Sprintf("%s at %s (%s)", l.event.kind.name, l.event.start.Format("15:04:05.000"), l.event.detail)
	}
	return fmt.Sprintf("%s: chain broken at %s, found %s (%s); event: %s; state Secret: %s", l.connection,
		l.brokenAt.Format("15:04:05.000"), l.detectedAt.Format("15:04:05.000"), l.reason, event, l.state)
}

// markdown renders the report.
func (r *runReport) markdown() string {
	var b strings.Builder
	tr, d := r.tracker, r.driver
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	p("### Chaos run of %s", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("| | |")
	p("|---|---|")
	p("| Machine | %d CPUs (`nproc`), %s, %s, %s |", r.machine.cpus, orUnknown(r.machine.model), orUnknown(r.machine.kernel), r.machine.goVer)
	p("| Load average | %s before, %s after (1, 5, 15 min) |", orUnknown(r.machine.loadAvg), orUnknown(r.machineAfter.loadAvg))
	p("| Command | `%s` |", r.cfg.command)
	p("| Source | %s |", revision())
	p("| Seed | `CHAOS_SEED=%d` repeats the schedule of events (not their timing) |", r.cfg.seed)
	p("| Duration | %s of events, then %s until every chain was intact or its loss recorded%s |",
		r.chaos.Round(time.Second), r.settle.Round(time.Second), map[bool]string{true: "", false: " (not all settled)"}[r.settled])
	p("| Connections | %d AuthorizationCode, access tokens of %s, renewBeforePercentage 50 |", len(tr.conns), accessTokenLifetime)
	pendingText := "a `--pending-refresh-token-dir` kept across restarts"
	switch {
	case r.cfg.managers > 1 && r.cfg.sharedPending:
		pendingText = "one `--pending-refresh-token-dir` shared by every process"
	case r.cfg.managers > 1:
		pendingText = "each replica its own `--pending-refresh-token-dir`, kept across its restarts"
	}
	p("| Managers | %d (replicas with leader election), `--mautic-timeout=%s`, %s; %d processes started |",
		r.cfg.managers, mauticTimeout, pendingText, r.processes)
	p("| Rotations | %s (refresh_token grants that issued a new refresh token), of %s refresh_token requests |",
		thousands(r.rotations), thousands(r.grants))
	p("| Refresh tokens spent again | %d (Mautic's `ReusedRefreshTokens`); beyond one per loss that only a refusal could reveal, i.e. sent again after a 2xx answer without a refresh token (which should stall with %s and send nothing): %d |",
		r.reused, authv1alpha1.RefreshAnswerUnusableReason, r.resentAfterUnusable())
	p("| Unpersisted window | %s |", r.windowText())
	p("| Time without a valid access token | %s |", r.downText())
	p("")

	p("| Event | What | Count | Lost | Allowed |")
	p("|---|---|---:|---:|---|")
	for _, k := range d.kinds {
		events := r.eventsOf(k)
		count := fmt.Sprintf("%d", len(events))
		allowed := "0"
		switch k.policy {
		case protocolLoss:
			count += fmt.Sprintf(" (%d met a refresh)", r.faultsMet(k))
			allowed = fmt.Sprintf("≤ %d (protocol)", r.faultsMet(k))
		case sigkillLoss:
			classes := map[killClass]int{}
			inside := 0
			for _, e := range events {
				if len(e.killClasses) > 0 {
					inside++
				}
				for _, class := range e.killClasses {
					classes[class]++
				}
			}
			count += fmt.Sprintf(", %d inside a refresh (refreshes interrupted: %d claimed only, %d rotated and in the pending dir, %d rotated and not durable)",
				inside, classes[killClaimOnly], classes[killRotatedPending], classes[killRotatedNotDurable])
			allowed = fmt.Sprintf("≤ %d (rotated and not durable)", classes[killRotatedNotDurable])
		}
		p("| %s | %s | %s | %d | %s |", k.name, k.description, count, r.lossesOf(k), allowed)
	}
	p("")

	protocol, window, other := 0, 0, 0
	for _, l := range tr.losses {
		switch l.expected {
		case "protocol":
			protocol++
		case "sigkill window":
			window++
		default:
			other++
		}
	}
	p("| Refresh tokens lost | |")
	p("|---|---:|")
	p("| by the protocol (Mautic rotated, its answer never arrived) | %d |", protocol)
	p("| to a SIGKILL between Mautic's rotation and the first durable copy | %d |", window)
	p("| otherwise: the operator's fault (asserted 0) | %d |", other)
	p("")

	p("| Connection | Without a valid access token | Longest gap | Lost |")
	p("|---|---:|---:|---:|")
	for _, c := range tr.conns {
		p("| %s | %s | %s | %d |", c.name, c.down.Round(100*time.Millisecond), c.longestGap.Round(100*time.Millisecond), c.losses)
	}
	p("")

	var notes []string
	reasons := map[string]int{}
	for _, e := range r.crashes {
		reasons[e.reason]++
	}
	notes = append(notes, fmt.Sprintf("Manager exits nobody asked for (restarted like a kubelet would): %d%s.", len(r.crashes), countsText(reasons)))
	notes = append(notes, fmt.Sprintf("RefreshAnswerUnusable stalls on a token Mautic still accepted (an HTML page or malformed JSON "+
		"answered in its place, which the operator cannot tell from a rotation), ended by a refresh requested as a person would: %d.",
		r.tracker.personRefreshes))
	if len(d.shutdowns) > 0 {
		sorted := append([]time.Duration(nil), d.shutdowns...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		notes = append(notes, fmt.Sprintf("SIGTERM to exit: median %s, max %s over %d SIGTERMs; %d needed a SIGKILL after %s.",
			sorted[len(sorted)/2].Round(10*time.Millisecond), sorted[len(sorted)-1].Round(10*time.Millisecond), len(sorted), d.forcedKills, stopTimeout))
	}
	if d.notMet > 0 {
		notes = append(notes, fmt.Sprintf("%d fault events met fewer token requests than injected within 30s (no leader then).", d.notMet))
	}
	notes = append(notes, fmt.Sprintf("Samples: %d, of which %d could not read the API server (frozen).", tr.ticks, tr.failedReads))
	if len(r.pendingKept) > 0 {
		notes = append(notes, fmt.Sprintf("At the end, %d chains were kept only in the pending directory, not yet written back: %s.",
			len(r.pendingKept), strings.Join(r.pendingKept, ", ")))
	}
	if len(r.unresolved) > 0 {
		notes = append(notes, fmt.Sprintf("At the end, %d chains were broken for less than %s and left unjudged: %s.",
			len(r.unresolved), brokenFor, strings.Join(r.unresolved, ", ")))
	}
	for _, a := range tr.anomalies {
		notes = append(notes, "Anomaly: "+a)
	}
	for _, panicked := range r.panics {
		notes = append(notes, "Panic: "+panicked)
	}
	for _, note := range notes {
		p("- %s", note)
	}
	if len(tr.losses) > 0 {
		p("")
		p("Losses, in order:")
		p("")
		for i, l := range tr.losses {
			if i == 40 {
				p("- ... and %d more", len(tr.losses)-i)
				break
			}
			verdict := "must not happen"
			if l.expected != "" {
				verdict = "inherent: " + l.expected
			}
			p("- %s [%s]", l.describe(), verdict)
		}
	}
	return b.String()
}

// windowText renders the unpersisted-window histogram.
func (r *runReport) windowText() string {
	h := r.window
	if h.count == 0 {
		return "no observations scraped"
	}
	return fmt.Sprintf("p50 %s, p99 %s (bucket ≤ %s), max bucket ≤ %s; mean %s over %s rotations scraped (from the managers' `%s` buckets)",
		seconds(h.quantile(0.5)), seconds(h.quantile(0.99)), seconds(h.bucketOf(0.99)), seconds(h.bucketOf(1)),
		seconds(h.sum/h.count), thousands(int(h.count)), windowMetric)
}

// downText renders the time without a valid access token.
func (r *runReport) downText() string {
	var total, worst, longest time.Duration
	worstName := ""
	for _, c := range r.tracker.conns {
		total += c.down
		if c.down > worst {
			worst, worstName = c.down, c.name
		}
		longest = max(longest, c.longestGap)
	}
	span := r.chaos + r.settle
	share := 0.0
	if span > 0 {
		share = 100 * total.Seconds() / (span.Seconds() * float64(len(r.tracker.conns)))
	}
	text := fmt.Sprintf("%s in total over %d connections (%.1f%% of connection-time)", total.Round(100*time.Millisecond), len(r.tracker.conns), share)
	if worstName != "" {
		text += fmt.Sprintf("; at most %s for %s; longest gap %s", worst.Round(100*time.Millisecond), worstName, longest.Round(100*time.Millisecond))
	}
	return text + "; sampled every 200ms, the last token read standing in while the API server was frozen"
}

// seconds renders a duration in seconds as ms or s.
func seconds(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.IsInf(v, 1):
		return "+Inf"
	case v < 1:
		return fmt.Sprintf("%.2g ms", v*1000)
	default:
		return fmt.Sprintf("%.3g s", v)
	}
}

// thousands renders n with thousands separators.
func thousands(n int) string {
	s := fmt.Sprintf("%d", n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// countsText renders counts by name as " (a: 1, b: 2)".
func countsText(counts map[string]int) string {
	if len(counts) == 0 {
		return ""
	}
	var parts []string
	for name, n := range counts {
		parts = append(parts, fmt.Sprintf("%s: %d", name, n))
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// revision names the commit the run was built from, and whether the tree had changes.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output() //nolint:noctx // a quick local command
	if err != nil {
		return "unknown (not a git checkout)"
	}
	text := "commit " + strings.TrimSpace(string(out))
	if status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(status) > 0 { //nolint:noctx // as above
		text += " with uncommitted changes"
	}
	return text
}
