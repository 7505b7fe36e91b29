package token_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

const (
	credentialsHash = "credentials-hash-a"
	connectionHash  = "connection-hash-a"
	refreshRequest  = "2025-03-01T12:30:00Z"
)

var (
	// expiresAt is when the token issued at issuedAt expires: a one hour lifetime.
	expiresAt = issuedAt.Add(time.Hour)
	// renewAt is the default-percentage renewal time of that token.
	renewAt = issuedAt.Add(40*time.Minute + 12*time.Second)
)

// freshInput returns, each time a new copy, the input of a connection whose one hour token
// was issued ten minutes ago and for which nothing has changed.
func freshInput() token.Input {
	return token.Input{
		Now: issuedAt.Add(10 * time.Minute),
		Issued: &token.Issued{
			IssuedAt:        issuedAt,
			ExpiresAt:       expiresAt,
			CredentialsHash: credentialsHash,
			ConnectionHash:  connectionHash,
		},
		CredentialsHash: credentialsHash,
		ConnectionHash:  connectionHash,
		RenewAt:         renewAt,
	}
}

// freshBasicInput returns the input of a Basic connection verified ten minutes ago: no expiry,
// reverified after token.ReverifyInterval.
func freshBasicInput() token.Input {
	return freshBasic()()
}

// Mutations of freshInput that each make exactly one policy fire.
var (
	tokenSecretModified = func(in *token.Input) { in.Issued = nil; in.TokenSecretModified = true }
	noToken             = func(in *token.Input) { in.Issued = nil }
	credentialsChanged  = func(in *token.Input) { in.CredentialsHash = "credentials-hash-b" }
	connectionChanged   = func(in *token.Input) { in.ConnectionHash = "connection-hash-b" }
	refreshRequested    = func(in *token.Input) { in.RefreshRequest = refreshRequest }
)

// fresh returns, as a table's input, freshInput with mutations applied in order.
func fresh(mutations ...func(*token.Input)) func() token.Input {
	return func() token.Input {
		in := freshInput()
		for _, mutate := range mutations {
			mutate(&in)
		}
		return in
	}
}

// basicCredentials turns freshInput into freshBasicInput: no expiry, reverified after
// token.ReverifyInterval.
func basicCredentials(in *token.Input) {
	in.Issued.ExpiresAt = time.Time{}
	in.RenewAt = issuedAt.Add(token.ReverifyInterval)
}

// freshBasic returns, as a table's input, freshBasicInput with mutations applied in order.
func freshBasic(mutations ...func(*token.Input)) func() token.Input {
	return fresh(append([]func(*token.Input){basicCredentials}, mutations...)...)
}

func TestPolicyFiresAlone(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		policy      token.Policy
		input       func() token.Input
		wantReason  string
		wantMessage string
	}{
		{
			name:        "TokenSecretModified when nothing is remembered",
			policy:      token.TokenSecretModified,
			input:       fresh(tokenSecretModified),
			wantReason:  authv1alpha1.TokenSecretModifiedReason,
			wantMessage: "the token Secret does not hold the token the operator published",
		},
		{
			name:        "NoToken",
			policy:      token.NoToken,
			input:       fresh(noToken),
			wantReason:  authv1alpha1.NoTokenReason,
			wantMessage: "no token has been issued yet",
		},
		{
			name:        "CredentialsChanged",
			policy:      token.CredentialsChanged,
			input:       fresh(credentialsChanged),
			wantReason:  authv1alpha1.CredentialsChangedReason,
			wantMessage: "the credentials Secret changed",
		},
		{
			name:        "ConnectionChanged",
			policy:      token.ConnectionChanged,
			input:       fresh(connectionChanged),
			wantReason:  authv1alpha1.ConnectionChangedReason,
			wantMessage: "spec.url or spec.grant changed",
		},
		{
			name:        "RefreshRequested",
			policy:      token.RefreshRequested,
			input:       fresh(refreshRequested),
			wantReason:  authv1alpha1.RefreshRequestedReason,
			wantMessage: "refresh requested at 2025-03-01T12:30:00Z",
		},
		{
			name:        "Expired",
			policy:      token.Expired,
			input:       fresh(func(in *token.Input) { in.Now = expiresAt.Add(time.Second) }),
			wantReason:  authv1alpha1.TokenExpiredReason,
			wantMessage: "the token expired at 2025-03-01T13:00:00Z",
		},
		{
			name:   "Expired reports the expiry in UTC",
			policy: token.Expired,
			input: fresh(func(in *token.Input) {
				in.Issued.ExpiresAt = expiresAt.In(time.FixedZone("CET", 3600))
				in.Now = expiresAt.Add(time.Second)
			}),
			wantReason:  authv1alpha1.TokenExpiredReason,
			wantMessage: "the token expired at 2025-03-01T13:00:00Z",
		},
		{
			name:        "RenewalDue",
			policy:      token.RenewalDue,
			input:       fresh(func(in *token.Input) { in.Now = renewAt.Add(time.Second) }),
			wantReason:  authv1alpha1.RenewalDueReason,
			wantMessage: "renewal was due at 2025-03-01T12:40:12Z",
		},
		{
			name:   "RenewalDue reports the renewal time in UTC",
			policy: token.RenewalDue,
			input: fresh(func(in *token.Input) {
				in.RenewAt = renewAt.In(time.FixedZone("PST", -8*3600))
				in.Now = renewAt.Add(time.Second)
			}),
			wantReason:  authv1alpha1.RenewalDueReason,
			wantMessage: "renewal was due at 2025-03-01T12:40:12Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			reason, message, needed := tt.policy(tt.input())

			g.Expect(needed).To(BeTrue())
			g.Expect(reason).To(Equal(tt.wantReason))
			g.Expect(message).To(Equal(tt.wantMessage))
		})
	}
}

func TestPolicyDoesNotFireForFreshToken(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		policy token.Policy
	}{
		{name: "TokenSecretModified", policy: token.TokenSecretModified},
		{name: "NoToken", policy: token.NoToken},
		{name: "CredentialsChanged", policy: token.CredentialsChanged},
		{name: "ConnectionChanged", policy: token.ConnectionChanged},
		{name: "RefreshRequested", policy: token.RefreshRequested},
		{name: "Expired", policy: token.Expired},
		{name: "RenewalDue", policy: token.RenewalDue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			for _, in := range []token.Input{freshInput(), freshBasicInput()} {
				reason, message, needed := tt.policy(in)

				g.Expect(needed).To(BeFalse())
				g.Expect(reason).To(BeEmpty())
				g.Expect(message).To(BeEmpty())
			}
		})
	}
}

func TestTokenNeededChain(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		input      func() token.Input
		wantReason string // empty when no new token is needed
	}{
		{
			name:  "fresh token",
			input: freshInput,
		},
		{
			name:  "fresh Basic credentials",
			input: freshBasicInput,
		},
		{
			name:  "one nanosecond before renewal",
			input: fresh(func(in *token.Input) { in.Now = renewAt.Add(-time.Nanosecond) }),
		},
		{
			name:       "no token",
			input:      fresh(noToken),
			wantReason: authv1alpha1.NoTokenReason,
		},
		{
			name:       "token Secret modified with nothing remembered",
			input:      fresh(tokenSecretModified),
			wantReason: authv1alpha1.TokenSecretModifiedReason,
		},
		{
			// The operator still knows the token it published and restores it; no new token.
			name:  "token Secret modified with a remembered token",
			input: fresh(func(in *token.Input) { in.TokenSecretModified = true }),
		},
		{
			name:       "credentials changed",
			input:      fresh(credentialsChanged),
			wantReason: authv1alpha1.CredentialsChangedReason,
		},
		{
			name:       "connection changed",
			input:      fresh(connectionChanged),
			wantReason: authv1alpha1.ConnectionChangedReason,
		},
		{
			name:       "new refresh request",
			input:      fresh(refreshRequested),
			wantReason: authv1alpha1.RefreshRequestedReason,
		},
		{
			name:       "refresh request different from the last handled one",
			input:      fresh(refreshRequested, func(in *token.Input) { in.LastHandledRefreshRequest = "2025-03-01T12:00:00Z" }),
			wantReason: authv1alpha1.RefreshRequestedReason,
		},
		{
			name:  "refresh request equal to the last handled one",
			input: fresh(refreshRequested, func(in *token.Input) { in.LastHandledRefreshRequest = refreshRequest }),
		},
		{
			name:  "refresh annotation removed after being handled",
			input: fresh(func(in *token.Input) { in.LastHandledRefreshRequest = refreshRequest }),
		},
		{
			name:       "expired exactly at expiresAt",
			input:      fresh(func(in *token.Input) { in.Now = expiresAt }),
			wantReason: authv1alpha1.TokenExpiredReason,
		},
		{
			name:       "expired without a renewal time",
			input:      fresh(func(in *token.Input) { in.RenewAt = time.Time{}; in.Now = expiresAt.Add(time.Hour) }),
			wantReason: authv1alpha1.TokenExpiredReason,
		},
		{
			name:       "renewal due exactly at renewAt",
			input:      fresh(func(in *token.Input) { in.Now = renewAt }),
			wantReason: authv1alpha1.RenewalDueReason,
		},
		{
			name:  "zero renewAt is never due",
			input: freshBasic(func(in *token.Input) { in.RenewAt = time.Time{}; in.Now = issuedAt.Add(100 * 365 * 24 * time.Hour) }),
		},
		{
			name:  "Basic credentials never expire",
			input: freshBasic(func(in *token.Input) { in.Now = issuedAt.Add(token.ReverifyInterval - time.Nanosecond) }),
		},
		{
			name:       "Basic credentials are reverified after the reverify interval",
			input:      freshBasic(func(in *token.Input) { in.Now = issuedAt.Add(token.ReverifyInterval) }),
			wantReason: authv1alpha1.RenewalDueReason,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			reason, message, needed := token.TokenNeededChain.Evaluate(tt.input())

			g.Expect(reason).To(Equal(tt.wantReason))
			g.Expect(needed).To(Equal(tt.wantReason != ""))
			if needed {
				g.Expect(message).NotTo(BeEmpty())
			} else {
				g.Expect(message).To(BeEmpty())
			}
		})
	}
}

func TestTokenNeededChainPrecedence(t *testing.T) {
	t.Parallel()

	// With the package's mutations, each of these makes exactly one policy fire.
	expired := func(in *token.Input) { in.Now = expiresAt.Add(time.Minute) }
	renewalDue := func(in *token.Input) {
		if in.Now.Before(renewAt) {
			in.Now = renewAt
		}
	}

	tests := []struct {
		name       string
		mutations  []func(*token.Input)
		wantReason string
	}{
		{
			name:       "token Secret modified before no token",
			mutations:  []func(*token.Input){tokenSecretModified, noToken, refreshRequested},
			wantReason: authv1alpha1.TokenSecretModifiedReason,
		},
		{
			name:       "no token before refresh requested",
			mutations:  []func(*token.Input){noToken, refreshRequested, renewalDue},
			wantReason: authv1alpha1.NoTokenReason,
		},
		{
			name:       "credentials changed before connection changed",
			mutations:  []func(*token.Input){credentialsChanged, connectionChanged},
			wantReason: authv1alpha1.CredentialsChangedReason,
		},
		{
			name:       "credentials changed before renewal due",
			mutations:  []func(*token.Input){credentialsChanged, renewalDue},
			wantReason: authv1alpha1.CredentialsChangedReason,
		},
		{
			name:       "connection changed before refresh requested",
			mutations:  []func(*token.Input){connectionChanged, refreshRequested},
			wantReason: authv1alpha1.ConnectionChangedReason,
		},
		{
			name:       "refresh requested before expired",
			mutations:  []func(*token.Input){refreshRequested, expired},
			wantReason: authv1alpha1.RefreshRequestedReason,
		},
		{
			name:       "expired before renewal due",
			mutations:  []func(*token.Input){expired, renewalDue},
			wantReason: authv1alpha1.TokenExpiredReason,
		},
		{
			name:       "credentials changed wins when every policy with a token fires",
			mutations:  []func(*token.Input){credentialsChanged, connectionChanged, refreshRequested, expired, renewalDue},
			wantReason: authv1alpha1.CredentialsChangedReason,
		},
		{
			name:       "token Secret modified wins when every policy fires that can without a token",
			mutations:  []func(*token.Input){tokenSecretModified, credentialsChanged, connectionChanged, refreshRequested, expired, renewalDue},
			wantReason: authv1alpha1.TokenSecretModifiedReason,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			reason, _, needed := token.TokenNeededChain.Evaluate(fresh(tt.mutations...)())

			g.Expect(needed).To(BeTrue())
			g.Expect(reason).To(Equal(tt.wantReason))
		})
	}
}

// TestRefreshRequestedFiresOncePerAnnotationValue plays the reconciler: after a refresh it records
// the annotation value as handled, and the same value must not trigger another refresh.
func TestRefreshRequestedFiresOncePerAnnotationValue(t *testing.T) {
	t.Parallel()

	steps := []struct {
		annotation string
		wantFired  bool
	}{
		{annotation: "", wantFired: false},
		{annotation: "2025-03-01T12:30:00Z", wantFired: true},
		{annotation: "2025-03-01T12:30:00Z", wantFired: false},
		{annotation: "2025-03-01T12:30:00Z", wantFired: false},
		{annotation: "2025-03-01T12:45:00Z", wantFired: true},
		{annotation: "2025-03-01T12:45:00Z", wantFired: false},
		{annotation: "", wantFired: false},
		// Setting an earlier value again is still a new request: values are compared, not ordered.
		{annotation: "2025-03-01T12:30:00Z", wantFired: true},
		{annotation: "2025-03-01T12:30:00Z", wantFired: false},
	}

	g := NewWithT(t)
	lastHandled := ""
	for i, step := range steps {
		in := freshInput()
		in.RefreshRequest = step.annotation
		in.LastHandledRefreshRequest = lastHandled

		reason, _, needed := token.TokenNeededChain.Evaluate(in)

		g.Expect(needed).To(Equal(step.wantFired), "step %d, annotation %q", i, step.annotation)
		if needed {
			g.Expect(reason).To(Equal(authv1alpha1.RefreshRequestedReason), "step %d", i)
			lastHandled = step.annotation
		}
	}
}

func TestChainEvaluate(t *testing.T) {
	t.Parallel()

	never := func(token.Input) (string, string, bool) { return "Never", "never fires", false }
	fires := func(reason string) token.Policy {
		return func(token.Input) (string, string, bool) { return reason, "fired " + reason, true }
	}

	tests := []struct {
		name        string
		chain       token.Chain
		wantReason  string
		wantMessage string
		wantNeeded  bool
	}{
		{name: "empty chain"},
		{name: "nothing fires", chain: token.Chain{never, never}},
		{
			name:        "the only policy that fires",
			chain:       token.Chain{never, fires("B"), never},
			wantReason:  "B",
			wantMessage: "fired B",
			wantNeeded:  true,
		},
		{
			name:        "the first of several that fire",
			chain:       token.Chain{never, fires("A"), fires("B")},
			wantReason:  "A",
			wantMessage: "fired A",
			wantNeeded:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)

			reason, message, needed := tt.chain.Evaluate(freshInput())

			g.Expect(reason).To(Equal(tt.wantReason))
			g.Expect(message).To(Equal(tt.wantMessage))
			g.Expect(needed).To(Equal(tt.wantNeeded))
		})
	}
}

func TestChainEvaluateStopsAtFirstFiringPolicy(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)

	laterCalls := 0
	chain := token.Chain{
		func(token.Input) (string, string, bool) { return "First", "first", true },
		func(token.Input) (string, string, bool) { laterCalls++; return "Later", "later", true },
	}

	reason, _, _ := chain.Evaluate(freshInput())

	g.Expect(reason).To(Equal("First"))
	g.Expect(laterCalls).To(BeZero())
}
