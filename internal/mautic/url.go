package mautic

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// urlExample is how error messages show a good site URL.
const urlExample = "e.g. https://mautic.example.com"

// NormalizeURL validates a Mautic site URL and returns its canonical base: lower-case scheme
// and host, no default port, no trailing "/" (so "//api" never happens), dot segments and
// doubled slashes cleaned, a "/index.php" suffix kept (sites without URL rewriting serve
// /index.php/oauth/v2/token) but "/index.php/" trimmed to "/index.php".
// Errors are *ConfigError values naming the fix, for: an empty or unparsable URL, a scheme
// other than http or https, an empty or malformed host, user info, a query or a fragment.
func NormalizeURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", urlError("the URL is empty: set it to the Mautic site URL, " + urlExample)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error repeats the whole URL, which may hold a password: keep only the reason.
		reason := err.Error()
		var parseErr *url.Error
		if errors.As(err, &parseErr) {
			reason = parseErr.Err.Error()
		}
		return "", urlError(fmt.Sprintf("cannot parse the URL (%s): write the Mautic site URL, %s", reason, urlExample))
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "":
		return "", urlError("the URL has no scheme: write it as https://host, " + urlExample)
	case scheme != "https" && scheme != "http":
		return "", urlError(fmt.Sprintf("the URL scheme %q is not supported: use https:// (or http://), %s", u.Scheme, urlExample))
	case u.Opaque != "":
		return "", urlError("the URL has no host: write it as " + scheme + "://host, " + urlExample)
	case u.User != nil:
		return "", urlError("the URL must not contain a user name or password: remove them and put credentials in the credentials Secret")
	case u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "?"):
		return "", urlError("the URL must not contain a query (?...): use the Mautic site URL only, " + urlExample)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "", urlError("the URL must not contain a fragment (#...): use the Mautic site URL only, " + urlExample)
	}
	host, err := canonicalHost(scheme, u)
	if err != nil {
		return "", err
	}
	escapedPath := u.EscapedPath()
	if escapedPath != "" {
		escapedPath = path.Clean("/" + escapedPath)
	}
	escapedPath = strings.TrimRight(escapedPath, "/")
	return scheme + "://" + host + escapedPath, nil
}

// canonicalHost returns u's host and port in lower case, without the scheme's default port.
func canonicalHost(scheme string, u *url.URL) (string, error) {
	hostname := strings.ToLower(u.Hostname())
	if hostname == "" {
		return "", urlError("the URL has no host: write it as " + scheme + "://host, " + urlExample)
	}
	port := u.Port()
	if strings.Contains(hostname, ":") {
		// An IPv6 literal: brackets are required, zones are not allowed in a site URL.
		ip := net.ParseIP(hostname)
		if ip == nil || !strings.HasPrefix(u.Host, "[") {
			return "", urlError(fmt.Sprintf("the URL host %q is not a valid IPv6 address in brackets, e.g. https://[2001:db8::1]", u.Hostname()))
		}
		if ip.To4() != nil {
			hostname = ip.String() // an IPv4-mapped address: write it the IPv4 way
		} else {
			hostname = "[" + ip.String() + "]"
		}
	} else if !validHostname(hostname) {
		return "", urlError(fmt.Sprintf("the URL host %q is not a valid host name: use letters, digits, \"-\" and \".\" "+
			"(write an internationalised name in its xn-- form)", u.Hostname()))
	}
	if port != "" {
		for _, r := range port {
			if r < '0' || r > '9' {
				return "", urlError(fmt.Sprintf("the URL port %q is not a number", port))
			}
		}
		port = strings.TrimLeft(port, "0")
		if port == "" || len(port) > 5 || port > "65535" && len(port) == 5 {
			return "", urlError("the URL port must be between 1 and 65535")
		}
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port == "" {
		return hostname, nil
	}
	return hostname + ":" + port, nil
}

// validHostname reports whether h (lower case) is a DNS name or IPv4 literal: letters, digits,
// "-", "_" and ".", not starting or ending with ".".
func validHostname(h string) bool {
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.Contains(h, "..") {
		return false
	}
	for _, r := range h {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' && r != '.' {
			return false
		}
	}
	return true
}

// urlError builds the *ConfigError for a bad site URL.
func urlError(message string) error {
	return &ConfigError{Field: "url", Message: message}
}
