package mautic

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw       string
		want      string
		wantError string // substring of the error; "" when no error
	}{
		{raw: "https://m.example.com", want: "https://m.example.com"},
		{raw: "https://M.Example.COM", want: "https://m.example.com"},
		{raw: "HTTPS://m.example.com/", want: "https://m.example.com"},
		{raw: "  https://m.example.com///  ", want: "https://m.example.com"},
		{raw: "https://m.example.com:443/", want: "https://m.example.com"},
		{raw: "http://m.example.com:80", want: "http://m.example.com"},
		{raw: "https://m.example.com:8443/", want: "https://m.example.com:8443"},
		{raw: "https://m.example.com:08443", want: "https://m.example.com:8443"},
		{raw: "https://m.example.com/index.php", want: "https://m.example.com/index.php"},
		{raw: "https://m.example.com/index.php/", want: "https://m.example.com/index.php"},
		{raw: "https://m.example.com//mautic//index.php/", want: "https://m.example.com/mautic/index.php"},
		{raw: "https://m.example.com/mautic/../index.php", want: "https://m.example.com/index.php"},
		{raw: "https://m.example.com/my%20site/", want: "https://m.example.com/my%20site"},
		{raw: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{raw: "http://[2001:DB8::1]:8080/", want: "http://[2001:db8::1]:8080"},
		{raw: "http://[::ffff:10.0.0.1]/", want: "http://10.0.0.1"},
		{raw: "", wantError: "empty"},
		{raw: "m.example.com", wantError: "no scheme"},
		{raw: "ftp://m.example.com", wantError: `scheme "ftp" is not supported`},
		{raw: "mailto:admin@example.com", wantError: "not supported"},
		{raw: "https:m.example.com", wantError: "no host"},
		{raw: "https://", wantError: "no host"},
		{raw: "https:///index.php", wantError: "no host"},
		{raw: "https://:443", wantError: "no host"},
		{raw: "https://admin:hunter2@m.example.com", wantError: "user name or password"},
		{raw: "https://m.example.com?x=1", wantError: "query"},
		{raw: "https://m.example.com/?", wantError: "query"},
		{raw: "https://m.example.com/#top", wantError: "fragment"},
		{raw: "https://m.example.com#", wantError: "fragment"},
		{raw: "https://exa mple.com", wantError: "cannot parse"},
		{raw: "https://m.example.com:99999", wantError: "between 1 and 65535"},
		{raw: "https://m.example.com:0", wantError: "between 1 and 65535"},
		{raw: "https://m.example.com:abc", wantError: "cannot parse"},
		{raw: "https://m_ex!ample.com", wantError: "not a valid host name"},
		{raw: "https://mäutic.example.com", wantError: "xn--"},
		{raw: "https://[fe80::1%25eth0]/", wantError: "IPv6"},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			got, err := NormalizeURL(tc.raw)
			if tc.wantError != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(err.Error()).To(ContainSubstring(tc.wantError))
				g.Expect(err.Error()).NotTo(ContainSubstring("hunter2"))
				var configErr *ConfigError
				g.Expect(errors.As(err, &configErr)).To(BeTrue())
				g.Expect(configErr.Field).To(Equal("url"))
				g.Expect(Classify(err)).To(Equal(ClassConfiguration))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
			again, err := NormalizeURL(got)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(got))
		})
	}
}

func FuzzNormalizeURL(f *testing.F) {
	for _, seed := range []string{
		"https://m.example.com", "HTTPS://M.EXAMPLE.COM:443/index.php/", "http://[2001:db8::1]:8080//a/../b/",
		"https://m.example.com/my%20site/", "https://m.example.com/%2e%2e/x", "https://u:p@h", "https://h?x#y",
		"http://h/a b", "https://h:0080/", "https://h./", "http://[::ffff:1.2.3.4]:1", "https://h/%zz", "https://h/!$&'()*+,;=:@",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := NormalizeURL(raw)
		if err != nil {
			if got != "" {
				t.Fatalf("NormalizeURL(%q) returned %q with error %v", raw, got, err)
			}
			return
		}
		again, err := NormalizeURL(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: NormalizeURL(%q) = %q, then %q, %v", raw, got, again, err)
		}
		if strings.HasSuffix(got, "/") || strings.ContainsAny(got, "?#") {
			t.Fatalf("NormalizeURL(%q) = %q has a trailing slash, query or fragment", raw, got)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("NormalizeURL(%q) = %q does not parse: %v", raw, got, err)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Host == "" {
			t.Fatalf("NormalizeURL(%q) = %q has user info, a query or fragment, or no host", raw, got)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("NormalizeURL(%q) = %q has scheme %q", raw, got, u.Scheme)
		}
	})
}
