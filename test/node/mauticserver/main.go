// Command mauticserver runs the Mautic test server (internal/mautic/mautictest) as a pod of the
// node suite (test/node): Mautic's OAuth2 token endpoint and API over HTTPS on --listen, with the
// certificate and key the suite mounts (naming the Service's DNS names and ClusterIP), and a
// plain-HTTP control API on --admin-listen through which the suite registers API clients, seeds
// refresh tokens, holds one token answer and reads the request counters.
//
// The test server itself listens on loopback inside the pod; a reverse proxy in front of it
// terminates TLS and, when the suite asks, holds the next token answer after the server has
// carried out the grant (a refresh token is then already rotated), so that a manager can be
// stopped while its refresh is in flight. Only token answers are held, never the API answers the
// workload depends on.
//
// Control API (JSON answers):
//
//	POST /clients?name=N[&client_credentials=true]  register an API client: {"id", "secret"}
//	POST /refresh-tokens?client=ID                   seed a refresh token: {"refresh_token"}
//	POST /hold?client=ID&seconds=S                   hold the next token answer to ID S seconds
//	GET  /counters                                   request counters (answers.Counters)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
	"github.com/mautic-operator/mautic-operator/test/node/answers"
)

func main() {
	listen := flag.String("listen", ":8443", "HTTPS address of the Mautic endpoints.")
	adminListen := flag.String("admin-listen", ":8080", "Plain-HTTP address of the control API.")
	backend := flag.String("backend-listen", "127.0.0.1:8081", "Loopback address of the test server behind the TLS proxy.")
	certFile := flag.String("tls-cert", "/etc/mautic-tls/tls.crt", "PEM certificate served on --listen.")
	keyFile := flag.String("tls-key", "/etc/mautic-tls/tls.key", "PEM key of --tls-cert.")
	accessLifetime := flag.Duration("access-token-lifetime", mautictest.DefaultAccessTokenLifetime, "Lifetime of the access tokens issued.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *adminListen, *backend, *certFile, *keyFile, *accessLifetime); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, listen, adminListen, backend, certFile, keyFile string, accessLifetime time.Duration) error {
	mautic := mautictest.NewUnstartedServer()
	mautic.SetAccessTokenLifetime(accessLifetime)
	if err := mautic.StartOn(backend); err != nil {
		return err
	}
	defer mautic.Close()
	target, err := url.Parse(mautic.URL())
	if err != nil {
		return err
	}
	s := &server{mautic: mautic}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = s.holdTokenAnswer

	public := &http.Server{Addr: listen, Handler: withTokenClient(proxy), ReadHeaderTimeout: 10 * time.Second}
	admin := &http.Server{Addr: adminListen, Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 2)
	go func() { errs <- public.ListenAndServeTLS(certFile, keyFile) }()
	go func() { errs <- admin.ListenAndServe() }()
	log.Printf("Mautic test server: HTTPS on %s, control API on %s, access tokens live %s", listen, adminListen, accessLifetime)

	select {
	case err = <-errs:
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = public.Shutdown(shutdownCtx)
	_ = admin.Shutdown(shutdownCtx)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// server is the control API's state.
type server struct {
	mautic *mautictest.Server

	mu          sync.Mutex
	clientIDs   []string      // the clients registered through the control API
	holdClient  string        // the client whose next token answer is held
	hold        time.Duration // how long; 0: no hold
	heldAnswers int           // token answers held so far (counted when the hold begins)
}

// adminHandler is the control API.
func (s *server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /clients", func(w http.ResponseWriter, r *http.Request) {
		app := s.mautic.NewClient(r.URL.Query().Get("name"), r.URL.Query().Get("client_credentials") == "true")
		s.mu.Lock()
		s.clientIDs = append(s.clientIDs, app.ID)
		s.mu.Unlock()
		writeJSON(w, map[string]string{"id": app.ID, "secret": app.Secret})
	})
	mux.HandleFunc("POST /refresh-tokens", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"refresh_token": s.mautic.IssueRefreshToken(r.URL.Query().Get("client"))})
	})
	mux.HandleFunc("POST /hold", func(w http.ResponseWriter, r *http.Request) {
		seconds, err := strconv.Atoi(r.URL.Query().Get("seconds"))
		if err != nil || seconds <= 0 {
			http.Error(w, "seconds must be a positive whole number", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.holdClient, s.hold = r.URL.Query().Get("client"), time.Duration(seconds)*time.Second
		s.mu.Unlock()
		writeJSON(w, map[string]int{"seconds": seconds})
	})
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, _ *http.Request) {
		c := answers.Counters{
			TokenRequests:         s.mautic.TokenRequests(),
			TokenRequestsByClient: map[string]int{},
			APIRequests:           s.mautic.APIRequests(),
			ReusedRefreshTokens:   s.mautic.ReusedRefreshTokens(),
		}
		s.mu.Lock()
		ids := append([]string(nil), s.clientIDs...)
		c.HeldAnswers = s.heldAnswers
		s.mu.Unlock()
		for _, id := range ids {
			c.TokenRequestsByClient[id] = s.mautic.TokenRequestsByClient(id)
		}
		writeJSON(w, c)
	})
	return mux
}

// holdTokenAnswer delays the first token answer to the client of POST /hold: the test server has
// already carried out the grant, so the client learns its new tokens only after the hold.
func (s *server) holdTokenAnswer(resp *http.Response) error {
	if resp.Request == nil || !isTokenPath(resp.Request.URL.Path) {
		return nil
	}
	clientID, _ := resp.Request.Context().Value(tokenClientKey{}).(string)
	s.mu.Lock()
	var hold time.Duration
	if s.hold > 0 && clientID == s.holdClient {
		hold, s.hold = s.hold, 0
		s.heldAnswers++
	}
	s.mu.Unlock()
	if hold > 0 {
		log.Printf("holding a token answer (HTTP %d) for %s", resp.StatusCode, hold)
		select {
		case <-time.After(hold):
		case <-resp.Request.Context().Done():
			return fmt.Errorf("client gone while its token answer was held: %w", resp.Request.Context().Err())
		}
	}
	return nil
}

// tokenClientKey is the context key of a token request's client id.
type tokenClientKey struct{}

// maxTokenRequestBytes bounds the token request body read by withTokenClient.
const maxTokenRequestBytes = 64 << 10

// withTokenClient puts the client id of a token request (from its form, query or Basic header)
// into the request's context, which the proxied request keeps, and hands the request on with
// its body intact.
func withTokenClient(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isTokenPath(r.URL.Path) {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenRequestBytes))
			if err != nil {
				http.Error(w, "reading the request", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			clientID := r.URL.Query().Get("client_id")
			if form, err := url.ParseQuery(string(body)); err == nil && form.Get("client_id") != "" {
				clientID = form.Get("client_id")
			}
			if id, _, ok := r.BasicAuth(); ok {
				clientID = id
			}
			r = r.WithContext(context.WithValue(r.Context(), tokenClientKey{}, clientID))
		}
		next.ServeHTTP(w, r)
	})
}

// isTokenPath reports whether p is Mautic's token endpoint, also in its /index.php form.
func isTokenPath(p string) bool {
	return p == "/oauth/v2/token" || p == "/index.php/oauth/v2/token"
}

// writeJSON writes v as a JSON answer.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("writing an answer: %v", err)
	}
}
