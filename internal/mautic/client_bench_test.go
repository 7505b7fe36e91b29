package mautic

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

// BenchmarkParseErrorBody reads the three error shapes a token endpoint answers with.
func BenchmarkParseErrorBody(b *testing.B) {
	bodies := []struct {
		name string
		body string
	}{
		{name: "mautic", body: `{"errors":[{"message":"The client credentials are invalid","code":400,"type":"invalid_client"}]}`},
		{name: "rfc6749", body: `{"error":"invalid_grant","error_description":"Invalid refresh token"}`},
		{name: "legacy", body: `{"error":{"message":"You do not have access to the requested area/action.","code":403}}`},
	}
	for _, bb := range bodies {
		b.Run(bb.name, func(b *testing.B) {
			body := []byte(bb.body)
			b.ReportAllocs()
			for b.Loop() {
				if parsed := parseErrorBody(OpToken, http.StatusBadRequest, body); parsed.Message == "" {
					b.Fatalf("no message parsed from %s", bb.body)
				}
			}
		})
	}
}

// BenchmarkTokenClientCredentials is one whole client_credentials token request over in-process
// HTTP (keep-alive, no TLS), through the guarded transport and the answer parser. The benchmark counts the
// allocations of the whole process, so the server's share is in the figures too: "mautictest" runs
// the Mautic test server (which also mints and stores a token per request); "fixedAnswer" runs a
// handler that writes one constant answer, to show how much of the cost is the client's.
func BenchmarkTokenClientCredentials(b *testing.B) {
	b.Run("mautictest", func(b *testing.B) {
		server := mautictest.NewServer()
		b.Cleanup(server.Close)
		app := server.NewClient("bench", true)
		c := New(Options{RequestsPerSecond: -1})
		req := TokenRequest{Site: Site{BaseURL: server.URL(), AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: app.ID, ClientSecret: app.Secret}
		benchTokenRequests(b, c, req)
		if got, want := server.TokenRequests(), b.N+1; got != want {
			b.Fatalf("the server saw %d token requests, want %d", got, want)
		}
	})
	b.Run("fixedAnswer", func(b *testing.B) {
		answer := []byte(`{"access_token":"NzQ3ZjM1ZTc0YjYwYjM0YTExZDQ1OGQ4ZjE5YjYxYjM2","expires_in":3600,"token_type":"bearer","scope":null}`)
		server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(answer)
		}))
		b.Cleanup(server.Close)
		c := New(Options{RequestsPerSecond: -1})
		req := TokenRequest{Site: Site{BaseURL: server.URL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_bench", ClientSecret: "secret"}
		benchTokenRequests(b, c, req)
	})
}

// benchTokenRequests makes one request outside the timed loop (so that the transport and the
// kept-alive connection exist, as in a running manager), then times b.N more.
func benchTokenRequests(b *testing.B, c Client, req TokenRequest) {
	b.Helper()
	ctx := context.Background()
	if _, err := c.Token(ctx, req); err != nil {
		b.Fatalf("warm-up token request: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tok, err := c.Token(ctx, req)
		if err != nil {
			b.Fatalf("token request: %v", err)
		}
		if tok.AccessToken == "" {
			b.Fatal("no access token")
		}
	}
}

// BenchmarkNormalizeURL normalises site URLs as reconcileCredentials does on every reconcile.
func BenchmarkNormalizeURL(b *testing.B) {
	urls := []struct {
		name string
		raw  string
	}{
		{name: "canonical", raw: "https://mautic.example.com"},
		{name: "messy", raw: " HTTPS://Mautic.Example.COM:443//index.php/ "},
		{name: "ipv6", raw: "http://[2001:db8::1]:8080/mautic/"},
	}
	for _, u := range urls {
		b.Run(u.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeURL(u.raw); err != nil {
					b.Fatalf("NormalizeURL(%q): %v", u.raw, err)
				}
			}
		})
	}
}
