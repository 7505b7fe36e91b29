package mautic

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mautic-operator/mautic-operator/internal/mautic/mautictest"
)

func TestDeniedAddr(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ip     string
		denied bool
	}{
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf::1", true},
		{"fd00:ec2::254", true},
		{"224.0.0.1", true},
		{"ff02::1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::ffff:0.0.0.0", true},
		{"::", true},
		{"100.100.100.200", true},
		{"::ffff:100.100.100.200", true},
		{"168.63.129.16", true},
		{"64:ff9b::a83f:8110", true},
		{"127.0.0.1", false},
		{"10.0.0.1", false},
		{"100.100.100.201", false},
		{"168.63.129.17", false},
		{"::1", false},
		{"fd00:ec2::253", false},
		{"2001:db8::1", false},
		{"64:ff9b::a01:101", false},
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			g.Expect(deniedAddr(DefaultDenyTargetCIDRs(), netip.MustParseAddr(tc.ip))).To(Equal(tc.denied))
		})
	}
}

func TestCheckDialAddress(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	deny := DefaultDenyTargetCIDRs()
	err := checkDialAddress(deny, "rebind.example.com", "169.254.169.254:80")
	var forbidden *ForbiddenAddressError
	g.Expect(errors.As(err, &forbidden)).To(BeTrue())
	g.Expect(*forbidden).To(Equal(ForbiddenAddressError{Host: "rebind.example.com", IP: "169.254.169.254"}))
	g.Expect(checkDialAddress(deny, "m.example.com", "[fe80::1%eth0]:443")).NotTo(Succeed())
	g.Expect(checkDialAddress(deny, "m.example.com", "0.0.0.0:443")).NotTo(Succeed())
	g.Expect(checkDialAddress(deny, "m.example.com", "[::]:443")).NotTo(Succeed())
	g.Expect(checkDialAddress(deny, "m.example.com", "93.184.216.34:443")).To(Succeed())
	custom := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	g.Expect(checkDialAddress(custom, "m.example.com", "10.1.2.3:443")).NotTo(Succeed())
	g.Expect(checkDialAddress(custom, "m.example.com", "[::ffff:10.1.2.3]:443")).NotTo(Succeed())
	g.Expect(checkDialAddress(custom, "m.example.com", "169.254.169.254:80")).To(Succeed())
}

func TestLinkLocalTargetsAreRefused(t *testing.T) {
	t.Parallel()
	for _, baseURL := range []string{
		"http://169.254.169.254",
		"http://169.254.169.254:8080/index.php",
		"https://[fe80::1]",
		"http://[fd00:ec2::254]",
		"http://metadata.google.internal",
		"http://Metadata.Google.Internal.",
		"https://0.0.0.0",
		"https://0.0.0.1:8443",
		"https://[::]",
		"https://[::ffff:0.0.0.0]",
		"https://100.100.100.200",
		"https://168.63.129.16",
		"https://[64:ff9b::a83f:8110]",
	} {
		t.Run(baseURL, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			observed := 0
			opts := fastOptions()
			opts.Observe = func(Op, Grant, int, time.Duration) { observed++ }
			c := New(opts)
			_, err := c.Token(context.Background(), TokenRequest{Site: Site{BaseURL: baseURL, AllowInsecureHTTP: true}, Grant: GrantClientCredentials, ClientID: "1_a", ClientSecret: "s"})
			var forbidden *ForbiddenAddressError
			g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%v", err)
			g.Expect(Classify(err)).To(Equal(ClassConfiguration))
			_, err = c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: baseURL, AllowInsecureHTTP: true}, Authorization: BearerAuthorization("t")})
			g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%v", err)
			g.Expect(observed).To(BeZero(), "no request may be made")
		})
	}
}

func TestDialTimeCheck(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	// The dialer's Control hook sees the resolved address: dialling a forbidden literal through it fails before connecting.
	c := New(fastOptions()).(*client)
	var forbidden *ForbiddenAddressError
	for address, ip := range map[string]string{
		"169.254.169.254:80": "169.254.169.254", "0.0.0.0:80": "0.0.0.0", "[::]:80": "::",
		"100.100.100.200:80": "100.100.100.200", "168.63.129.16:80": "168.63.129.16",
	} {
		_, err := c.dialContext(context.Background(), "tcp", address)
		g.Expect(errors.As(err, &forbidden)).To(BeTrue(), "%s: %v", address, err)
		g.Expect(forbidden.IP).To(Equal(ip))
	}

	allowed := New(Options{AllowLinkLocal: true, Timeout: 50 * time.Millisecond}).(*client)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not really dial out: only show that the hook is gone
	_, err := allowed.dialContext(ctx, "tcp", "169.254.169.254:80")
	g.Expect(errors.As(err, &forbidden)).To(BeFalse())
}

// TestTypedErrorsSurviveHTTPClient checks the premise of guardedTransport: an error a
// RoundTripper returns reaches http.Client.Do's caller wrapped in *url.Error, which unwraps, so
// errors.As finds it.
func TestTypedErrorsSurviveHTTPClient(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	s.InjectFault(mautictest.FaultHTML, 1)
	c := New(fastOptions()).(*client)
	hc, err := c.httpClient(nil)
	g.Expect(err).NotTo(HaveOccurred())
	ctx := withCall(context.Background(), &callInfo{op: OpVerify})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+DefaultVerifyPath, nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := hc.Do(req)
	if resp != nil {
		_ = resp.Body.Close()
	}
	var urlErr *url.Error
	g.Expect(errors.As(err, &urlErr)).To(BeTrue(), "%T %v", err, err)
	var unexpected *UnexpectedResponseError
	g.Expect(errors.As(err, &unexpected)).To(BeTrue())
	g.Expect(unexpected.ContentType).To(HavePrefix("text/html"))
}

func TestTransportCache(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewTLSServer()
	defer s.Close()
	c := New(fastOptions()).(*client)
	plain, err := c.httpClient(nil)
	g.Expect(err).NotTo(HaveOccurred())
	again, err := c.httpClient([]byte{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(plain))
	withCA, err := c.httpClient(s.CACertPEM())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(withCA).NotTo(BeIdenticalTo(plain))
	sameCA, err := c.httpClient(append([]byte(nil), s.CACertPEM()...))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sameCA).To(BeIdenticalTo(withCA))
}

func TestRateLimitDoesNotWait(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	s := mautictest.NewServerFor(t)
	app := s.NewClient("crm", true)
	fake := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := New(Options{RequestsPerSecond: 0.001, Burst: 1, Clock: fake})

	_, err := c.Token(context.Background(), ccRequest(s, app))
	g.Expect(err).NotTo(HaveOccurred())

	// The bucket is empty: the next request fails at once, saying when a token is back.
	_, err = c.Token(context.Background(), ccRequest(s, app))
	var busy *HostBusyError
	g.Expect(errors.As(err, &busy)).To(BeTrue(), "%T %v", err, err)
	g.Expect(busy.Reason).To(Equal(HostBusyRateLimited))
	g.Expect(busy.RetryAfter).To(Equal(1000 * time.Second))
	g.Expect(Classify(err)).To(Equal(ClassTransient))
	g.Expect(IsAmbiguous(err)).To(BeFalse())
	_, err = c.Verify(context.Background(), VerifyRequest{Site: Site{BaseURL: s.URL(), AllowInsecureHTTP: true}, Authorization: BearerAuthorization("t")})
	retryAfter, ok := IsHostBusy(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(retryAfter).To(Equal(1000 * time.Second))
	g.Expect(s.TokenRequests()).To(Equal(1))
	g.Expect(s.APIRequests()).To(BeZero())

	// A refused request does not use up a token: once the bucket refills, one goes.
	fake.Step(999 * time.Second)
	retryAfter, _ = IsHostBusy(func() error { _, err := c.Token(context.Background(), ccRequest(s, app)); return err }())
	g.Expect(retryAfter).To(Equal(time.Second))
	fake.Step(time.Second)
	_, err = c.Token(context.Background(), ccRequest(s, app))
	g.Expect(err).NotTo(HaveOccurred())

	// Another host has its own bucket.
	other := mautictest.NewServerFor(t)
	_, err = c.Token(context.Background(), ccRequest(other, other.NewClient("crm", true)))
	g.Expect(err).NotTo(HaveOccurred())
}
