package mautic

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// maxCachedTransports bounds the transport cache; past it an entry is dropped (CA bundles
// rotate rarely, so this only guards against unbounded growth).
const maxCachedTransports = 64

// jsonMediaType is the media type Mautic answers with and the client asks for.
const jsonMediaType = "application/json"

// callInfo travels in a request's context: what the request is for and, once answered, what
// came back, so that errors from x/oauth2 that lost their type can still be reported plainly.
type callInfo struct {
	op    Op
	grant Grant

	mu          sync.Mutex
	statusCode  int
	contentType string
}

// record stores the status and content type of the latest answer.
func (c *callInfo) record(statusCode int, contentType string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statusCode, c.contentType = statusCode, contentType
}

// last returns the status and content type of the latest answer (0 and "" when none).
func (c *callInfo) last() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusCode, c.contentType
}

type callInfoKey struct{}

// withCall returns ctx carrying info.
func withCall(ctx context.Context, info *callInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, info)
}

// callFrom returns the callInfo in ctx, or a verify call when there is none.
func callFrom(ctx context.Context) *callInfo {
	if info, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return info
	}
	return &callInfo{op: OpVerify}
}

// httpClient returns an *http.Client that trusts caPEM in addition to the system roots,
// sharing one *http.Transport per distinct bundle so that connections are reused.
func (c *client) httpClient(caPEM []byte) (*http.Client, error) {
	key := sha256.Sum256(caPEM)
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.httpClients[key]; ok {
		return hc, nil
	}
	base, err := c.newTransport(caPEM)
	if err != nil {
		return nil, err
	}
	if len(c.httpClients) >= maxCachedTransports {
		for oldKey, old := range c.httpClients {
			if rt, ok := old.Transport.(*guardedTransport); ok {
				rt.next.CloseIdleConnections()
			}
			delete(c.httpClients, oldKey)
			break
		}
	}
	hc := &http.Client{
		Transport: &guardedTransport{client: c, next: base},
		// A redirect means a wrong URL (http→https, a login page): report it, never follow it
		// (a followed POST turns into a GET and loses the form).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.httpClients[key] = hc
	return hc, nil
}

// newTransport builds the *http.Transport for one CA bundle.
func (c *client) newTransport(caPEM []byte) (*http.Transport, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(bytes.TrimSpace(caPEM)) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, &ConfigError{Field: "caCert", Message: "the CA bundle holds no PEM certificate: put one or more " +
				"\"-----BEGIN CERTIFICATE-----\" blocks in it"}
		}
		tlsConfig.RootCAs = pool
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           c.dialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
}

// dialContext dials addr, refusing link-local and metadata addresses at connect time, on the
// address actually dialled, so that a DNS answer cannot smuggle one in.
func (c *client) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: c.opts.Timeout, KeepAlive: 30 * time.Second}
	if !c.opts.AllowLinkLocal {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			return checkDialAddress(host, address)
		}
	}
	return dialer.DialContext(ctx, network, addr)
}

// checkDialAddress refuses address ("ip:port", as resolved) when it is link-local or a metadata address.
func checkDialAddress(host, address string) error {
	ipText, _, err := net.SplitHostPort(address)
	if err != nil {
		ipText = address
	}
	ipText, _, _ = strings.Cut(ipText, "%") // an IPv6 zone, as in fe80::1%eth0
	ip := net.ParseIP(ipText)
	if ip != nil && forbiddenIP(ip) {
		return &ForbiddenAddressError{Host: host, IP: ip.String()}
	}
	return nil
}

// metadataHosts are cloud metadata host names refused unless link-local targets are allowed.
var metadataHosts = map[string]bool{
	"metadata.google.internal": true,
	"metadata.goog":            true,
}

// ec2MetadataIPv6 is the IPv6 address of the AWS instance metadata service.
var ec2MetadataIPv6 = net.ParseIP("fd00:ec2::254")

// nat64Prefix is the well-known NAT64 prefix 64:ff9b::/96, which can embed an IPv4 address.
var nat64Prefix = &net.IPNet{IP: net.ParseIP("64:ff9b::"), Mask: net.CIDRMask(96, 128)}

// forbiddenIP reports whether ip is link-local (169.254/16, fe80::/10, link-local multicast)
// or a cloud metadata address, also when embedded in an IPv4-mapped or NAT64 address.
func forbiddenIP(ip net.IP) bool {
	if nat64Prefix.Contains(ip) {
		ip = ip[12:16]
	}
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.Equal(ec2MetadataIPv6)
}

// checkTargetHost refuses a request before any dial or proxy use when its host is a literal
// forbidden address or a metadata host name.
func checkTargetHost(hostname string) error {
	name := strings.TrimSuffix(strings.ToLower(hostname), ".")
	if metadataHosts[name] {
		return &ForbiddenAddressError{Host: hostname}
	}
	if ip := net.ParseIP(strings.Trim(name, "[]")); ip != nil && forbiddenIP(ip) {
		return &ForbiddenAddressError{Host: hostname, IP: ip.String()}
	}
	return nil
}

// limiter returns the token-bucket limiter for host (host:port, lower case).
func (c *client) limiter(host string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.limiters[host]
	if !ok {
		limit := rate.Limit(c.opts.RequestsPerSecond)
		if c.opts.RequestsPerSecond < 0 {
			limit = rate.Inf
		}
		l = rate.NewLimiter(limit, c.opts.Burst)
		c.limiters[host] = l
	}
	return l
}

// guardedTransport wraps the real transport: it refuses forbidden targets, applies the per-host
// rate limit, and reads every answer through the body size limit, refusing anything that is
// not well-formed JSON with a typed error that survives x/oauth2's and net/http's wrapping.
type guardedTransport struct {
	client *client
	next   *http.Transport
}

// RoundTrip implements http.RoundTripper.
func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.client
	call := callFrom(req.Context())
	if !c.opts.AllowLinkLocal {
		if err := checkTargetHost(req.URL.Hostname()); err != nil {
			closeRequestBody(req)
			return nil, err
		}
	}
	host := strings.ToLower(req.URL.Host)
	if err := c.limiter(host).Wait(req.Context()); err != nil {
		closeRequestBody(req)
		return nil, fmt.Errorf("waiting for the request limit of %s: %w", host, err)
	}
	if req.Header.Get("User-Agent") == "" || req.Header.Get("Accept") == "" {
		req = req.Clone(req.Context())
		if req.Header.Get("User-Agent") == "" {
			req.Header.Set("User-Agent", c.opts.UserAgent)
		}
		if req.Header.Get("Accept") == "" {
			req.Header.Set("Accept", jsonMediaType)
		}
	}

	start := c.opts.Clock.Now()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		c.observe(call, 0, start)
		return nil, err
	}
	defer c.observe(call, resp.StatusCode, start)
	contentType := resp.Header.Get("Content-Type")
	call.record(resp.StatusCode, contentType)
	unexpected := func(detail string) *UnexpectedResponseError {
		return &UnexpectedResponseError{Op: call.op, StatusCode: resp.StatusCode, ContentType: contentType, Detail: detail}
	}

	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified {
		discardBody(resp.Body, c.opts.MaxBodyBytes)
		return nil, unexpected("a redirect" + redirectTarget(resp))
	}
	if !isJSONMediaType(contentType) {
		discardBody(resp.Body, c.opts.MaxBodyBytes)
		return nil, unexpected("not JSON")
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBodyBytes+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", host, err)
	}
	if int64(len(body)) > c.opts.MaxBodyBytes {
		return nil, unexpected(fmt.Sprintf("a body larger than %d bytes", c.opts.MaxBodyBytes))
	}
	if !json.Valid(body) {
		return nil, unexpected("malformed JSON")
	}
	if call.op == OpToken && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err := checkTokenAnswer(call, resp.StatusCode, body); err != nil {
			return nil, err
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// observe reports one finished HTTP request to Options.Observe.
func (c *client) observe(call *callInfo, statusCode int, start time.Time) {
	if c.opts.Observe != nil {
		c.opts.Observe(call.op, call.grant, statusCode, c.opts.Clock.Since(start))
	}
}

// checkTokenAnswer checks a 2xx token answer before x/oauth2 reads it: an error object is
// returned as *Error (some servers answer errors with 200), a missing access token or an
// unreadable expires_in as *UnexpectedResponseError.
func checkTokenAnswer(call *callInfo, statusCode int, body []byte) error {
	var answer map[string]json.RawMessage
	if json.Unmarshal(body, &answer) != nil {
		return &UnexpectedResponseError{Op: call.op, StatusCode: statusCode, ContentType: jsonMediaType, Detail: "a JSON value that is not an object"}
	}
	if jsonString(answer["access_token"]) == "" {
		if _, hasErrors := answer["errors"]; hasErrors || jsonString(answer["error"]) != "" {
			parsed := parseErrorBody(call.op, statusCode, body)
			parsed.Grant = call.grant
			return parsed
		}
		return &UnexpectedResponseError{Op: call.op, StatusCode: statusCode, ContentType: jsonMediaType, Detail: "no access_token"}
	}
	if raw, ok := answer["expires_in"]; ok && string(raw) != "null" {
		if _, valid := expiresIn(raw); !valid {
			return &UnexpectedResponseError{Op: call.op, StatusCode: statusCode, ContentType: jsonMediaType, Detail: "an expires_in that is not a number"}
		}
	}
	return nil
}

// isJSONMediaType reports whether a Content-Type header names JSON (application/json or +json).
func isJSONMediaType(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == jsonMediaType || strings.HasSuffix(mediaType, "+json")
}

// redirectTarget describes a redirect's Location without its query or user info, which may hold secrets.
func redirectTarget(resp *http.Response) string {
	location, err := resp.Location()
	if err != nil {
		return ""
	}
	clean := url.URL{Scheme: location.Scheme, Host: location.Host, Path: location.Path}
	return fmt.Sprintf(" to %q", clean.String())
}

// discardBody drains a little of body, so the connection can be reused, and closes it.
func discardBody(body io.ReadCloser, limit int64) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, limit))
	_ = body.Close()
}

// closeRequestBody closes a request body a RoundTripper will not send, as the contract asks.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// unwrapTransportError turns an error from http.Client.Do or x/oauth2 into what the caller sees:
// our typed errors as they are (without net/http's "Post <url>:" prefix), anything else with
// the endpoint named and the URL's query dropped.
func unwrapTransportError(call *callInfo, err error) error {
	var unexpected *UnexpectedResponseError
	var forbidden *ForbiddenAddressError
	var mauticErr *Error
	switch {
	case errors.As(err, &unexpected):
		return unexpected
	case errors.As(err, &forbidden):
		return forbidden
	case errors.As(err, &mauticErr):
		return mauticErr
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		target := urlErr.URL
		if u, parseErr := url.Parse(urlErr.URL); parseErr == nil {
			target = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
		}
		hint := ""
		if isCertificateError(err) {
			hint = " (if the site uses a private CA, add it to the trusted CA bundle)"
		}
		return fmt.Errorf("%s request to %s failed: %w%s", call.op.endpoint(), target, urlErr.Err, hint)
	}
	return fmt.Errorf("%s request failed: %w", call.op.endpoint(), err)
}
