package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// statusCommand is `kubectl mautic status NAME`.
type statusCommand struct{}

func (c *statusCommand) bind(*pflag.FlagSet) {}

func (c *statusCommand) validate() error { return nil }

func (c *statusCommand) run(ctx context.Context, inv invocation) error {
	conn, err := getConnection(ctx, inv.kube, inv.namespace, inv.name)
	if err != nil {
		return err
	}
	return printStatus(inv.stdout, conn, inv.clock.Now())
}

// printStatus writes a person's summary of conn's status as of now: readiness and why, the
// token's times, failures, and the fix when the operator is stalled.
func printStatus(w io.Writer, conn *authv1alpha1.MauticConnection, now time.Time) error {
	status := conn.Status
	ready := meta.FindStatusCondition(status.Conditions, authv1alpha1.ReadyCondition)
	reconciling := meta.FindStatusCondition(status.Conditions, authv1alpha1.ReconcilingCondition)
	stalled := meta.FindStatusCondition(status.Conditions, authv1alpha1.StalledCondition)
	grant := conn.EffectiveGrant()

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "MauticConnection:\t%s/%s\n", conn.Namespace, conn.Name)
	fmt.Fprintf(tw, "URL:\t%s\n", untrusted(conn.Spec.URL))
	fmt.Fprintf(tw, "Grant:\t%s\n", grant)
	if ready == nil {
		fmt.Fprintf(tw, "Ready:\tUnknown (no status yet: is mautic-operator running and watching namespace %s?)\n", conn.Namespace)
	} else {
		fmt.Fprintf(tw, "Ready:\t%s\n", conditionLine(ready))
	}
	if reconciling != nil && reconciling.Status == metav1.ConditionTrue {
		fmt.Fprintf(tw, "Reconciling:\t%s\n", conditionLine(reconciling))
	}
	if stalled != nil && stalled.Status == metav1.ConditionTrue {
		fmt.Fprintf(tw, "Stalled:\tTrue (%s)\n", stalled.Reason)
	}
	if conn.Spec.Suspend {
		fmt.Fprintf(tw, "Suspended:\tyes: spec.suspend is true; nothing is refreshed\n")
	}
	tokenSecret := status.TokenSecretName
	if tokenSecret == "" {
		tokenSecret = conn.TokenSecretName() + " (not written yet)"
	}
	fmt.Fprintf(tw, "Token Secret:\t%s\n", tokenSecret)
	fmt.Fprintf(tw, "Token expires:\t%s\n", timeLine(status.ExpiresAt, now))
	fmt.Fprintf(tw, "Next refresh:\t%s\n", timeLine(status.RenewAt, now))
	if grant == authv1alpha1.GrantAuthorizationCode {
		fmt.Fprintf(tw, "Refresh token expires:\t%s\n", timeLine(status.RefreshTokenExpiresAt, now))
	}
	fmt.Fprintf(tw, "Last refresh:\t%s\n", timeLine(status.LastRefreshTime, now))
	switch {
	case status.FailedAttempts > 0:
		fmt.Fprintf(tw, "Failed attempts:\t%d, last failure %s\n", status.FailedAttempts, timeLine(status.LastFailureTime, now))
	case status.LastFailureTime != nil:
		fmt.Fprintf(tw, "Failed attempts:\t0 (last failure %s, recovered since)\n", timeLine(status.LastFailureTime, now))
	default:
		fmt.Fprintf(tw, "Failed attempts:\t0\n")
	}
	version := status.MauticVersion
	if version == "" {
		version = "unknown"
	}
	fmt.Fprintf(tw, "Mautic version:\t%s\n", untrusted(version))
	if requested := conn.Annotations[authv1alpha1.RefreshRequestedAtAnnotation]; requested != "" && requested != status.LastHandledRefreshRequest {
		fmt.Fprintf(tw, "Refresh requested:\t%s (not handled yet)\n", untrusted(requested))
	}
	if ready != nil && status.ObservedGeneration < conn.Generation {
		fmt.Fprintf(tw, "Note:\tthe operator has not processed the latest spec yet (generation %d; status is of %d)\n",
			conn.Generation, status.ObservedGeneration)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if stalled != nil && stalled.Status == metav1.ConditionTrue {
		fmt.Fprintf(w, "\nFix: %s\n", untrusted(stalled.Message))
	}
	if needsAuthorization(ready, stalled) {
		fmt.Fprintf(w, "\nRun: kubectl mautic authorize %s -n %s\n", conn.Name, conn.Namespace)
	}
	return nil
}

// needsAuthorization reports whether the conditions say a person must run `kubectl mautic authorize`.
func needsAuthorization(conditions ...*metav1.Condition) bool {
	for _, condition := range conditions {
		if condition == nil || condition.Status == metav1.ConditionUnknown {
			continue
		}
		switch condition.Reason {
		case authv1alpha1.ReauthorizationRequiredReason, authv1alpha1.AuthorizationRequiredReason:
			return true
		}
	}
	return false
}

// conditionLine renders a condition as "True (Reason): message".
func conditionLine(condition *metav1.Condition) string {
	line := string(condition.Status)
	if condition.Reason != "" {
		line += " (" + condition.Reason + ")"
	}
	if condition.Message != "" {
		line += ": " + untrusted(condition.Message)
	}
	return line
}

// maxUntrustedBytes bounds a field the plugin prints that someone other than the user wrote.
const maxUntrustedBytes = 4096

// untrusted renders a field that a tenant or a Mautic server may have written: as it is when it
// is printable text, else quoted (so that control characters cannot rewrite the terminal or fake
// lines), and cut to maxUntrustedBytes.
func untrusted(value string) string {
	clipped := false
	if len(value) > maxUntrustedBytes {
		value, clipped = strings.ToValidUTF8(value[:maxUntrustedBytes], ""), true
	}
	for _, r := range value {
		if !unicode.IsPrint(r) {
			value = strconv.Quote(value)
			break
		}
	}
	if clipped {
		value += "…"
	}
	return value
}

// timeLine renders a status time as RFC 3339 UTC with how far it is from now ("in 42m", "5m ago").
func timeLine(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + relative(t.Time, now) + ")"
}

// relative says how far t is from now, kubectl-style: "in 42m", "3h ago", "now".
func relative(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d == 0:
		return "now"
	case d > 0:
		return "in " + duration.HumanDuration(d)
	default:
		return duration.HumanDuration(-d) + " ago"
	}
}
