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
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// maxCachedTransports bounds the transport cache; past it an entry is dropped (CA bundles
// rotate rarely, so this only guards against unbounded growth).
const maxCachedTransports = 64

// maxResponseHeaderBytes bounds an answer's header (net/http's default is 10 MiB).
const maxResponseHeaderBytes = 1 << 20

// jsonMediaType is the media type Mautic answers with and the client asks for.
const jsonMediaType = "application/json"

// formMediaType is the media type of a token request body.
const formMediaType = "application/x-www-form-urlencoded"

// callInfo travels in a request's context: what the request is for, for Observe and error
// messages, and whether it may have reached the server, for IsAmbiguous.
type callInfo struct {
	op    Op
	grant Grant
	// redactor knows the request's secrets, to keep them out of what the server sends back.
	redactor *redactor

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
		Proxy:                  c.proxyFunc,
		DialContext:            c.dialContext,
		TLSClientConfig:        tlsConfig,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
	}, nil
}

// dialContext dials addr, refusing denied addresses (Options.DenyTargetCIDRs) at connect time, on
// the address actually dialled, so that a DNS answer cannot smuggle one in. Behind a proxy the
// address dialled is the proxy's: proxyFunc checks the target itself before the proxy is used.
func (c *client) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: c.opts.Timeout, KeepAlive: 30 * time.Second}
	if !c.opts.AllowLinkLocal {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			return checkDialAddress(c.deny, host, address)
		}
	}
	return dialer.DialContext(ctx, network, addr)
}

// proxyFunc wraps the proxy selection (Options.Proxy): when a request is to go through a proxy,
// the proxy resolves the target, and the dial-time check only sees the proxy's address. So the
// target's name is resolved here first, and the request refused, before the proxy is contacted,
// when any of its addresses is denied. (The proxy resolves the name again: a DNS server that
// answers differently the second time can still get past this check; without a proxy, the
// dial-time check has no such gap.)
func (c *client) proxyFunc(req *http.Request) (*url.URL, error) {
	proxyURL, err := c.opts.Proxy(req)
	if err != nil || proxyURL == nil || c.opts.AllowLinkLocal {
		return proxyURL, err
	}
	if err := c.checkResolvedTarget(req.Context(), req.URL.Hostname()); err != nil {
		return nil, err
	}
	return proxyURL, nil
}

// checkResolvedTarget resolves host with Options.Resolver and refuses it when any of its
// addresses is denied. A name that does not resolve is refused too (the check cannot be made).
func (c *client) checkResolvedTarget(ctx context.Context, host string) error {
	if err := checkTargetHost(c.deny, host); err != nil {
		return err
	}
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if deniedAddr(c.deny, addr) {
			return &ForbiddenAddressError{Host: host, IP: addr.Unmap().String()}
		}
		return nil
	}
	addrs, err := c.opts.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolving %s to check its addresses before sending the request through the proxy: %w", printable(host), err)
	}
	if len(addrs) == 0 {
		return &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	for _, addr := range addrs {
		if deniedAddr(c.deny, addr) {
			return &ForbiddenAddressError{Host: host, IP: addr.WithZone("").Unmap().String()}
		}
	}
	return nil
}

// checkDialAddress refuses address ("ip:port", as resolved) when it is in a denied range.
func checkDialAddress(deny []netip.Prefix, host, address string) error {
	ipText, _, err := net.SplitHostPort(address)
	if err != nil {
		ipText = address
	}
	ipText, _, _ = strings.Cut(ipText, "%") // an IPv6 zone, as in fe80::1%eth0
	if addr, err := netip.ParseAddr(ipText); err == nil && deniedAddr(deny, addr) {
		return &ForbiddenAddressError{Host: host, IP: addr.Unmap().String()}
	}
	return nil
}

// metadataHosts are cloud metadata host names refused unless link-local targets are allowed.
var metadataHosts = map[string]bool{
	"metadata.google.internal": true,
	"metadata.goog":            true,
}

// nat64Prefix is the well-known NAT64 prefix 64:ff9b::/96, which can embed an IPv4 address.
var nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")

// DefaultDenyTargetCIDRs returns the address ranges refused as Mautic targets when
// Options.DenyTargetCIDRs is nil: "this network" 0.0.0.0/8 and the unspecified ::, link-local
// 169.254.0.0/16 and fe80::/10 (with AWS, GCP and OpenStack metadata at 169.254.169.254),
// link-local multicast 224.0.0.0/24 and ff02::/16, Alibaba Cloud's metadata 100.100.100.200,
// Azure's wireserver 168.63.129.16 and AWS's IPv6 metadata fd00:ec2::254. Each call returns a new
// slice.
func DefaultDenyTargetCIDRs() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("224.0.0.0/24"),
		netip.MustParsePrefix("ff02::/16"),
		netip.MustParsePrefix("100.100.100.200/32"),
		netip.MustParsePrefix("168.63.129.16/32"),
		netip.MustParsePrefix("fd00:ec2::254/128"),
	}
}

// DefaultDenyTargetCIDRsKeyword stands for DefaultDenyTargetCIDRs in a list ParseCIDRList reads.
const DefaultDenyTargetCIDRsKeyword = "default"

// ParseCIDRList reads a list of address ranges separated by commas or spaces, for a flag such as
// --deny-target-cidrs: CIDR ranges ("10.0.0.0/8", "fd00::/8"), single addresses ("192.0.2.1",
// taken as /32 or /128) and the word "default" for DefaultDenyTargetCIDRs, so that
// "default,10.0.0.0/8" extends the defaults. Ranges are masked to their prefix; an IPv4-mapped
// IPv6 range (::ffff:a.b.c.d/n, n >= 96) is read as the IPv4 range. An empty list gives an empty,
// non-nil slice: no range is denied.
func ParseCIDRList(list string) ([]netip.Prefix, error) {
	prefixes := []netip.Prefix{}
	items := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	for _, item := range items {
		if strings.EqualFold(item, DefaultDenyTargetCIDRsKeyword) {
			prefixes = append(prefixes, DefaultDenyTargetCIDRs()...)
			continue
		}
		var prefix netip.Prefix
		var err error
		if strings.Contains(item, "/") {
			prefix, err = netip.ParsePrefix(item)
		} else {
			var addr netip.Addr
			addr, err = netip.ParseAddr(item)
			if err == nil && addr.Zone() != "" {
				err = errors.New("a zone is not allowed")
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range or an IP address (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.1): %w", item, err)
		}
		prefixes = append(prefixes, normalizePrefix(prefix))
	}
	return prefixes, nil
}

// normalizePrefix masks p and turns an IPv4-mapped IPv6 range into the IPv4 range.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// normalizePrefixes returns a normalised copy of prefixes, dropping invalid ones.
func normalizePrefixes(prefixes []netip.Prefix) []netip.Prefix {
	normalized := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if p.IsValid() {
			normalized = append(normalized, normalizePrefix(p))
		}
	}
	return normalized
}

// deniedAddr reports whether addr is in one of the deny ranges, also when it embeds an IPv4
// address as an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address.
func deniedAddr(deny []netip.Prefix, addr netip.Addr) bool {
	addr = addr.WithZone("")
	candidates := [3]netip.Addr{addr, addr.Unmap()}
	if nat64Prefix.Contains(addr) {
		b := addr.As16()
		candidates[2] = netip.AddrFrom4([4]byte(b[12:16]))
	}
	for _, prefix := range deny {
		for _, candidate := range candidates {
			if candidate.IsValid() && prefix.Contains(candidate) {
				return true
			}
		}
	}
	return false
}

// checkTargetHost refuses a request before any dial or proxy use when its host is a literal
// denied address or a metadata host name.
func checkTargetHost(deny []netip.Prefix, hostname string) error {
	name := strings.TrimSuffix(strings.ToLower(hostname), ".")
	if metadataHosts[name] {
		return &ForbiddenAddressError{Host: hostname}
	}
	if addr, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && deniedAddr(deny, addr) {
		return &ForbiddenAddressError{Host: hostname, IP: addr.WithZone("").Unmap().String()}
	}
	return nil
}

// guardedTransport wraps the real transport: it refuses denied targets and redirects, and reads
// every answer through the body size limit. API answers that are not well-formed JSON are refused
// here with a typed error that survives net/http's wrapping; token answers are passed on as read,
// for Token to judge (it may have to recover a rotated refresh token from an answer it cannot use).
// Per-host limits are applied before the request gets here (hostGuard).
type guardedTransport struct {
	client *client
	next   *http.Transport
}

// RoundTrip implements http.RoundTripper.
func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.client
	call := callFrom(req.Context())
	if !c.opts.AllowLinkLocal {
		if err := checkTargetHost(c.deny, req.URL.Hostname()); err != nil {
			closeRequestBody(req)
			return nil, err
		}
	}
	host := strings.ToLower(req.URL.Host)
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
		var forbidden *ForbiddenAddressError
		if !errors.As(err, &forbidden) { // a refused target is no request, as before the dial
			c.observe(call, 0, start)
		}
		return nil, err
	}
	defer c.observe(call, resp.StatusCode, start)
	contentType := resp.Header.Get("Content-Type")
	unexpected := func(detail string) *UnexpectedResponseError {
		return &UnexpectedResponseError{Op: call.op, StatusCode: resp.StatusCode, ContentType: serverContentType(contentType, call.redactor), Detail: detail}
	}

	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified {
		discardBody(resp.Body, c.opts.MaxBodyBytes)
		return nil, unexpected("a redirect" + redirectTarget(resp, call.redactor))
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

// maxContentTypeBytes bounds the Content-Type an error quotes.
const maxContentTypeBytes = 256

// serverContentType returns a Content-Type header as an error may quote it: secrets redacted,
// then clipped.
func serverContentType(contentType string, secrets *redactor) string {
	return clip(secrets.redact(contentType), maxContentTypeBytes)
}

// isJSONMediaType reports whether a Content-Type header names JSON (application/json or +json).
func isJSONMediaType(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == jsonMediaType || strings.HasSuffix(mediaType, "+json")
}

// maxRedirectTargetBytes bounds the redirect target an error message shows.
const maxRedirectTargetBytes = 256

// redirectTarget describes a redirect's Location without its query or user info, which may hold
// secrets, and with the request's secrets redacted (before quoting, which could hide them).
func redirectTarget(resp *http.Response, secrets *redactor) string {
	location, err := resp.Location()
	if err != nil {
		return ""
	}
	// Scheme, host and the decoded path: a secret echoed in the path shows as sent, to be redacted.
	target := location.Scheme + "://" + location.Host + location.Path
	return fmt.Sprintf(" to %q", clip(secrets.redact(target), maxRedirectTargetBytes))
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
		if IsCertificateError(err) {
			hint = " (if the site uses a private CA, add it to the trusted CA bundle)"
		}
		return &requestError{
			message:     fmt.Sprintf("%s request to %s failed: %s%s", call.op.endpoint(), cleanTarget(urlErr.URL), failureText(call, urlErr.Err), hint),
			err:         urlErr.Err,
			mayHaveSent: call.mayHaveSent(),
		}
	}
	return &requestError{
		message:     fmt.Sprintf("%s request failed: %s", call.op.endpoint(), failureText(call, err)),
		err:         err,
		mayHaveSent: call.mayHaveSent(),
	}
}

// maxFailureTextBytes bounds the text of a transport failure in an error message: net/http
// quotes a malformed answer's status or header line in its errors, which a hostile server can
// make as long as the header size limit.
const maxFailureTextBytes = 512

// failureText returns err's text as a message may quote it: the request's secrets redacted,
// control characters replaced, then clipped.
func failureText(call *callInfo, err error) string {
	text := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, call.redactor.redact(err.Error()))
	return clip(text, maxFailureTextBytes)
}

// cleanTarget returns a URL without its query, fragment or user info, which may hold secrets.
func cleanTarget(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
