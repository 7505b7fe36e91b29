package token_test

import (
	"testing"
	"time"

	"github.com/mautic-operator/mautic-operator/internal/token"
)

// benchIssuedAt is when the benchmarks' token was obtained.
var benchIssuedAt = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

// benchFreshInput is the input of a connection whose one hour token was issued ten minutes ago
// and for which nothing has changed: the input of almost every reconcile.
func benchFreshInput() token.Input {
	expiresAt := benchIssuedAt.Add(time.Hour)
	return token.Input{
		Now: benchIssuedAt.Add(10 * time.Minute),
		Issued: &token.Issued{
			IssuedAt:        benchIssuedAt,
			ExpiresAt:       expiresAt,
			CredentialsHash: "credentials-hash",
			ConnectionHash:  "connection-hash",
		},
		CredentialsHash: "credentials-hash",
		ConnectionHash:  "connection-hash",
		RenewAt:         token.RenewAt(benchIssuedAt, expiresAt, token.RenewalPolicy{}, time.Minute),
	}
}

// BenchmarkTokenNeededChain runs the whole policy chain. "fresh" is the steady-state path every
// reconcile takes (no policy fires); "renewalDue" is the last policy firing, which formats its message.
func BenchmarkTokenNeededChain(b *testing.B) {
	b.Run("fresh", func(b *testing.B) {
		in := benchFreshInput()
		b.ReportAllocs()
		for b.Loop() {
			if _, _, needed := token.TokenNeededChain.Evaluate(in); needed {
				b.Fatal("a policy fired for a fresh token")
			}
		}
	})
	b.Run("renewalDue", func(b *testing.B) {
		in := benchFreshInput()
		in.Now = in.RenewAt.Add(time.Second)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, needed := token.TokenNeededChain.Evaluate(in); !needed {
				b.Fatal("no policy fired for a token due for renewal")
			}
		}
	})
}

// BenchmarkRenewAt computes the renewal time of a one hour token with the default percentage and
// a two minute jitter, as renewAtFor does on every reconcile.
func BenchmarkRenewAt(b *testing.B) {
	expiresAt := benchIssuedAt.Add(time.Hour)
	policy := token.RenewalPolicy{}
	jitter := 2 * time.Minute
	b.ReportAllocs()
	for b.Loop() {
		token.RenewAt(benchIssuedAt, expiresAt, policy, jitter)
	}
}

// BenchmarkJitter derives the jitter of a connection from its UID (a UUID, as Kubernetes sets it).
func BenchmarkJitter(b *testing.B) {
	const uid = "0f8fad5b-d9cb-469f-a165-70867728950e"
	b.ReportAllocs()
	for b.Loop() {
		token.Jitter(uid, time.Hour)
	}
}
