// Command workload is the node suite's (test/node) stand-in for an application that uses the
// operator's token: it mounts the token Secret as a volume (no subPath) and calls Mautic's
// /api/users/self every --interval with the Authorization header read from the mounted
// authorization file on every request, counting successes and failures. It also watches the
// mounted files and records when each new content appeared, which is how the suite measures how
// long the kubelet takes to bring a Secret update into a pod.
//
// GET /stats on --listen answers the counters and the changes seen (digests of the token, never
// the token itself; the plain content of --watch-file, which holds test data only).
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mautic-operator/mautic-operator/test/node/answers"
)

func main() {
	mauticURL := flag.String("url", "", "Mautic site URL, e.g. https://10.96.0.20 (required).")
	authFile := flag.String("authorization-file", "/var/run/mautic/authorization", "Mounted file holding the whole Authorization header value.")
	caFile := flag.String("ca-file", "", "PEM bundle to trust for --url; empty: the system roots.")
	watchFile := flag.String("watch-file", "", "Another mounted file whose changes are recorded with their content (test data only).")
	interval := flag.Duration("interval", time.Second, "Time between two API requests.")
	listen := flag.String("listen", ":8080", "Address of GET /stats.")
	flag.Parse()
	if *mauticURL == "" {
		log.Fatal("--url is required")
	}
	httpClient, err := newHTTPClient(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	w := &workload{url: strings.TrimSuffix(*mauticURL, "/") + "/api/users/self", authFile: *authFile, client: httpClient}
	go w.watch(ctx, *authFile, *watchFile)
	go w.callLoop(ctx, *interval)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(w.snapshot())
	})
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(rw, "ok") })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newHTTPClient trusts caFile (when set) besides the system roots.
func newHTTPClient(caFile string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile) //nolint:gosec // G304: the mounted CA file the pod spec names
		if err != nil {
			return nil, err
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", caFile)
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: transport, Timeout: 5 * time.Second}, nil
}

// workload holds the counters.
type workload struct {
	url      string
	authFile string
	client   *http.Client

	mu    sync.Mutex
	stats answers.Stats
}

// snapshot returns a copy of the stats.
func (w *workload) snapshot() answers.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.TokenChanges = append([]answers.Change(nil), s.TokenChanges...)
	s.WatchChanges = append([]answers.Change(nil), s.WatchChanges...)
	return s
}

// callLoop calls the API every interval until ctx ends.
func (w *workload) callLoop(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		err := w.call(ctx)
		w.mu.Lock()
		if err == nil {
			w.stats.Successes++
		} else {
			w.stats.Failures++
			w.stats.LastFailure = time.Now().UTC().Format(time.RFC3339Nano) + " " + err.Error()
		}
		w.mu.Unlock()
		if err != nil {
			log.Printf("API request failed: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// call makes one API request with the Authorization header read from the mounted file now.
func (w *workload) call(ctx context.Context) error {
	authorization, err := os.ReadFile(w.authFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", strings.TrimSpace(string(authorization)))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// watch reads the token file and the watch file every 50 ms and records each new content.
func (w *workload) watch(ctx context.Context, authFile, watchFile string) {
	var lastToken, lastWatch string
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		now := time.Now().UTC()
		if b, err := os.ReadFile(authFile); err == nil { //nolint:gosec // G304: the mounted token file the pod spec names
			sum := sha256.Sum256(b)
			if d := hex.EncodeToString(sum[:])[:16]; d != lastToken {
				lastToken = d
				w.record(&w.stats.TokenChanges, answers.Change{At: now, Value: d})
			}
		}
		if watchFile != "" {
			if b, err := os.ReadFile(watchFile); err == nil && string(b) != lastWatch { //nolint:gosec // G304: the mounted file the pod spec names
				lastWatch = string(b)
				w.record(&w.stats.WatchChanges, answers.Change{At: now, Value: lastWatch})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// record appends c to changes under the lock.
func (w *workload) record(changes *[]answers.Change, c answers.Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	*changes = append(*changes, c)
}
