package mautic

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// fakeResolver answers lookups from a table and counts them; a name it does not know fails.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]string
	lookups []string
}

// LookupNetIP implements Resolver.
func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, host)
	answer, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	addrs := make([]netip.Addr, 0, len(answer))
	for _, a := range answer {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	return addrs, nil
}

// lookupCount returns how many lookups were made.
func (r *fakeResolver) lookupCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lookups)
}

// fakeProxy is a forward proxy that records every request it gets and answers plain-HTTP
// requests itself with a token answer (CONNECT is refused).
type fakeProxy struct {
	url  *url.URL
	hits atomic.Int32
}

// newFakeProxy starts a fakeProxy that stops when the test ends.
func newFakeProxy(t *testing.T) *fakeProxy {
	t.Helper()
	p := &fakeProxy{}
	srv := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if r.Method == http.MethodConnect {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		answerWith(http.StatusOK, "application/json", `{"access_token":"at-via-proxy","expires_in":60}`)(w, r)
	})
	p.url, _ = url.Parse(srv.URL)
	return p
}

// proxiedOptions are client options that send every request through p, resolving with resolver.
func proxiedOptions(p *fakeProxy, resolver Resolver) Options {
	opts := fastOptions()
	opts.Proxy = func(*http.Request) (*url.URL, error) { return p.url, nil }
	opts.Resolver = resolver
	return opts
}

func TestProxyIsNeverContactedForDeniedTargets(t *testing.T) {
	t.Parallel()
	answers := map[string][]string{
		"rebind.example":      {"169.254.169.254"},
		"mixed.example":       {"93.184.216.34", "100.100.100.200"},
		"zero.example":        {"0.0.0.0"},
		"unspecified.example": {"::"},
		"alibaba.example":     {"100.100.100.200"},
		"azure.example":       {"168.63.129.16"},
		"mapped.example":      {"::ffff:169.254.169.254"},
		"nat64.example":       {"64:ff9b::a83f:8110"},
		"ec2v6.example":       {"fd00:ec2::254"},
		"ok.example":          {"192.0.2.10", "2001:db8::10"},
		"internal.example":    {"10.1.2.3"},
	}
	cases := []struct {
		name      string
		baseURL   string
		deny      []netip.Prefix
		allowAll  bool
		refusedIP string // "" when the request goes through the proxy
		dnsFails  bool
	}{
		{name: "rebinding name", baseURL: "http://rebind.example", refusedIP: "169.254.169.254"},
		{name: "rebinding name over https (CONNECT)", baseURL: "https://rebind.example", refusedIP: "169.254.169.254"},
		{name: "any denied address of several", baseURL: "https://mixed.example", refusedIP: "100.100.100.200"},
		{name: "0.0.0.0", baseURL: "https://zero.example", refusedIP: "0.0.0.0"},
		{name: "::", baseURL: "https://unspecified.example", refusedIP: "::"},
		{name: "Alibaba metadata", baseURL: "https://alibaba.example", refusedIP: "100.100.100.200"},
		{name: "Azure wireserver", baseURL: "https://azure.example:8443", refusedIP: "168.63.129.16"},
		{name: "IPv4-mapped", baseURL: "https://mapped.example", refusedIP: "169.254.169.254"},
		{name: "NAT64", baseURL: "https://nat64.example", refusedIP: "64:ff9b::a83f:8110"},
		{name: "EC2 IPv6 metadata", baseURL: "https://ec2v6.example", refusedIP: "fd00:ec2::254"},
		{name: "literal 100.100.100.200", baseURL: "https://100.100.100.200", refusedIP: "100.100.100.200"},
		{name: "literal ::", baseURL: "https://[::]", refusedIP: "::"},
		{name: "metadata host name", baseURL: "http://metadata.google.internal"},
		{name: "custom range", baseURL: "https://internal.example", deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, refusedIP: "10.1.2.3"},
		{name: "name that does not resolve", baseURL: "https://nxdomain.example", dnsFails: true},
		{name: "allowed name", baseURL: "http://ok.example"},
		{name: "link-local allowed by a custom list", baseURL: "http://rebind.example", deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "everything allowed", baseURL: "http://rebind.example", allowAll: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			proxy := newFakeProxy(t)
			resolver := &fakeResolver{answers: answers}
			opts := proxiedOptions(proxy, resolver)
			opts.DenyTargetCIDRs = tc.deny
			opts.AllowLinkLocal = tc.allowAll
			observed := 0
			opts.Observe = func(Op, Grant, int, time.Duration) { observed++ }
			c := New(opts)
			site := Site{BaseURL: tc.baseURL, AllowInsecureHTTP: true}
			tok, tokenErr := c.Token(context.Background(), TokenRequest{Site: site, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"})
			_, verifyErr := c.Verify(context.Background(), VerifyRequest{Site: site, Authorization: BearerAuthorization("t0ken")})

			refused := tc.refusedIP != "" || tc.baseURL == "http://metadata.google.internal"
			switch {
			case refused:
				for _, err := range []error{tokenErr, verifyErr} {
					var forbidden *ForbiddenAddressError
					g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%T %v", err, err)
					g.Expect(forbidden.IP).To(Equal(tc.refusedIP))
					g.Expect(Classify(err)).To(Equal(ClassConfiguration))
					g.Expect(IsAmbiguous(err)).To(BeFalse())
				}
			case tc.dnsFails:
				for _, err := range []error{tokenErr, verifyErr} {
					g.Expect(err).To(MatchError(ContainSubstring("resolving nxdomain.example to check its addresses")))
					var dnsErr *net.DNSError
					g.Expect(errors.As(err, &dnsErr)).To(BeTrue())
					g.Expect(Classify(err)).To(Equal(ClassTransient))
					g.Expect(IsAmbiguous(err)).To(BeFalse())
				}
			default:
				g.Expect(tokenErr).NotTo(HaveOccurred())
				g.Expect(tok.AccessToken).To(Equal("at-via-proxy"))
				g.Expect(proxy.hits.Load()).To(BeEquivalentTo(2), "the proxy carried both requests")
				if tc.allowAll {
					g.Expect(resolver.lookupCount()).To(BeZero())
				}
				return
			}
			g.Expect(proxy.hits.Load()).To(BeZero(), "the proxy must never be contacted for a denied target")
			if refused {
				g.Expect(observed).To(BeZero(), "no request may be made")
			}
		})
	}
}

func TestNoProxyKeepsTheDialTimeCheck(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	srv := rawServer(t, answerWith(http.StatusOK, "application/json", `{"access_token":"at"}`))
	resolver := &fakeResolver{}
	opts := fastOptions()
	opts.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	opts.Resolver = resolver
	_, err := New(opts).Token(context.Background(), TokenRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true},
		Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resolver.lookupCount()).To(BeZero(), "without a proxy the dialled address is checked, no lookup of our own")

	// The loopback server is refused once loopback is denied: the dial-time check uses the list.
	opts.DenyTargetCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	_, err = New(opts).Token(context.Background(), TokenRequest{Site: Site{BaseURL: srv.URL, AllowInsecureHTTP: true},
		Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"})
	var forbidden *ForbiddenAddressError
	g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%T %v", err, err)
	g.Expect(forbidden.IP).To(Equal("127.0.0.1"))

	// A name resolving to a denied address is caught at dial time.
	localhost := "http://localhost:" + srv.URL[len("http://127.0.0.1:"):]
	_, err = New(opts).Token(context.Background(), TokenRequest{Site: Site{BaseURL: localhost, AllowInsecureHTTP: true},
		Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s3cret"})
	g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%T %v", err, err)
	g.Expect(forbidden.Host).To(Equal("localhost"))
}

func TestParseCIDRList(t *testing.T) {
	t.Parallel()
	defaults := DefaultDenyTargetCIDRs()
	cases := []struct {
		name string
		list string
		want []netip.Prefix
		err  string
	}{
		{name: "empty", list: "", want: []netip.Prefix{}},
		{name: "blank", list: " , ,", want: []netip.Prefix{}},
		{name: "default", list: "default", want: defaults},
		{name: "default extended", list: "Default, 10.0.0.0/8", want: append(DefaultDenyTargetCIDRs(), netip.MustParsePrefix("10.0.0.0/8"))},
		{name: "ranges and addresses", list: "10.0.0.0/8 fd00::/8,192.0.2.1, 2001:db8::1",
			want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
				netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8::1/128")}},
		{name: "masked", list: "10.1.2.3/8", want: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{name: "IPv4-mapped range", list: "::ffff:169.254.0.0/112", want: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}},
		{name: "bad range", list: "10.0.0.0/33", err: `"10.0.0.0/33" is not a CIDR range or an IP address`},
		{name: "host name", list: "metadata.example", err: `"metadata.example" is not a CIDR range`},
		{name: "zone", list: "fe80::1%eth0", err: `"fe80::1%eth0" is not a CIDR range`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got, err := ParseCIDRList(tc.list)
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).NotTo(BeNil())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestDefaultDenyTargetCIDRsIsACopy(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	first := DefaultDenyTargetCIDRs()
	first[0] = netip.MustParsePrefix("192.0.2.0/24")
	g.Expect(DefaultDenyTargetCIDRs()[0]).To(Equal(netip.MustParsePrefix("0.0.0.0/8")))
}
