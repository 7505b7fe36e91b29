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
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// maxCachedTransports bounds the transport cache; past it an entry is dropped (CA bundles
// rotate rarely, so this only guards against unbounded growth).
const maxCachedTransports = 64

// jsonMediaType is the media type Mautic answers with and the client asks for.
const jsonMediaType = "application/json"

// formMediaType is the media type of a token request body.
const formMediaType = "application/x-www-form-urlencoded"

// callInfo travels in a request's context: what the request is for, for Observe and error
// messages, and whether it may have reached the server, for IsAmbiguous.
type callInfo struct {
	op    Op
	grant Grant

	// handedOver is set once a connection was obtained for the request: from then on the request
	// may be on its way, and a failure leaves unknown whether the server acted on it.
	handedOver atomic.Bool
}

// mayHaveSent reports whether the request was handed to a connection.
func (c *callInfo) mayHaveSent() bool {
	return c.handedOver.Load()
}

type callInfoKey struct{}

// withCall returns ctx carrying info, and tracing the request so that info learns when the
// request is handed to a connection (after any dial, proxy CONNECT and TLS handshake).
func withCall(ctx context.Context, info *callInfo) context.Context {
	ctx = context.WithValue(ctx, callInfoKey{}, info)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { info.handedOver.Store(true) },
	})
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

// guardedTransport wraps the real transport: it refuses forbidden targets and redirects, applies
// the per-host rate limit, and reads every answer through the body size limit. API answers that
// are not well-formed JSON are refused here with a typed error that survives net/http's
// wrapping; token answers are passed on as read, for Token to judge (it may have to recover a
// rotated refresh token from an answer it cannot use).
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
	unexpected := func(detail string) *UnexpectedResponseError {
		return &UnexpectedResponseError{Op: call.op, StatusCode: resp.StatusCode, ContentType: contentType, Detail: detail}
	}

	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified {
		discardBody(resp.Body, c.opts.MaxBodyBytes)
		return nil, unexpected("a redirect" + redirectTarget(resp))
	}
	if call.op == OpToken {
		// Up to MaxBodyBytes+1 bytes, so that Token can tell an oversized body; a read error
		// comes after what was read, as it would from the connection.
		body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBodyBytes+1))
		_ = resp.Body.Close()
		var reader io.Reader = bytes.NewReader(body)
		if err != nil {
			reader = io.MultiReader(reader, errorReader{err: err})
		}
		resp.Body = io.NopCloser(reader)
		resp.ContentLength = -1
		return resp, nil
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
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// errorReader is a reader that fails with err.
type errorReader struct {
	err error
}

// Read returns the error.
func (r errorReader) Read([]byte) (int, error) { return 0, r.err }

// observe reports one finished HTTP request to Options.Observe.
func (c *client) observe(call *callInfo, statusCode int, start time.Time) {
	if c.opts.Observe != nil {
		c.opts.Observe(call.op, call.grant, statusCode, c.opts.Clock.Since(start))
	}
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

// unwrapTransportError turns an error from http.Client.Do into what the caller sees: our typed
// errors as they are (without net/http's "Post <url>:" prefix), anything else as a
// *requestError naming the endpoint, without the URL's query, and remembering whether the
// request may have reached the server.
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
		hint := ""
		if isCertificateError(err) {
			hint = " (if the site uses a private CA, add it to the trusted CA bundle)"
		}
		return &requestError{
			message:     fmt.Sprintf("%s request to %s failed: %v%s", call.op.endpoint(), cleanTarget(urlErr.URL), urlErr.Err, hint),
			err:         urlErr.Err,
			mayHaveSent: call.mayHaveSent(),
		}
	}
	return &requestError{
		message:     fmt.Sprintf("%s request failed: %v", call.op.endpoint(), err),
		err:         err,
		mayHaveSent: call.mayHaveSent(),
	}
}

// cleanTarget returns a URL without its query, fragment or user info, which may hold secrets.
func cleanTarget(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
