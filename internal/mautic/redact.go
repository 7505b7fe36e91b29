package mautic

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
)

// Redacted replaces a known secret in text a server sent back.
const Redacted = "[redacted]"

// minRedactedBytes is the length below which a value is not redacted: replacing every "a" or
// "12" would garble messages and hide nothing worth hiding.
const minRedactedBytes = 4

// redactor replaces the secrets of one request (and the tokens read from its answer) in the text
// a server sent back, so that an echoing server cannot make an error message carry them into
// status conditions and events. It knows each secret in the forms a server is likely to echo it
// in: as is, form- and path-encoded, JSON-escaped (as Go and as PHP write it) and Go-quoted.
// Safe for concurrent use; the zero value and nil redact nothing.
type redactor struct {
	mu       sync.Mutex
	secrets  []string
	needles  []string // every form of every secret, longest first; nil until needed
	replacer *strings.Replacer
}

// newRedactor returns a redactor for secrets; values shorter than minRedactedBytes are ignored.
func newRedactor(secrets ...string) *redactor {
	r := &redactor{}
	r.add(secrets...)
	return r
}

// add adds secrets; values shorter than minRedactedBytes are ignored.
func (r *redactor) add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, secret := range secrets {
		if len(secret) >= minRedactedBytes && !slices.Contains(r.secrets, secret) {
			r.secrets = append(r.secrets, secret)
			r.needles, r.replacer = nil, nil
		}
	}
}

// addAuthorization adds an Authorization header value, the credentials after its scheme and,
// for Basic, the decoded "user:password" and the password.
func (r *redactor) addAuthorization(value string) {
	value = strings.TrimSpace(value)
	r.add(value)
	scheme, credentials, ok := strings.Cut(value, " ")
	if !ok {
		return
	}
	credentials = strings.TrimSpace(credentials)
	r.add(credentials)
	if !strings.EqualFold(scheme, "Basic") {
		return
	}
	decoded, err := base64.StdEncoding.DecodeString(credentials)
	if err != nil {
		return
	}
	r.add(string(decoded))
	if _, password, ok := strings.Cut(string(decoded), ":"); ok {
		r.add(password)
	}
}

// build computes the needles and the replacer. r.mu must be held.
func (r *redactor) build() {
	if r.replacer != nil || len(r.secrets) == 0 {
		return
	}
	seen := map[string]bool{}
	for _, secret := range r.secrets {
		for _, form := range secretForms(secret) {
			if len(form) >= minRedactedBytes && !seen[form] {
				seen[form] = true
				r.needles = append(r.needles, form)
			}
		}
	}
	// strings.Replacer tries the old strings in argument order at each position: longest first,
	// so that "Bearer <token>" wins over "<token>".
	slices.SortStableFunc(r.needles, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(r.needles))
	for _, needle := range r.needles {
		pairs = append(pairs, needle, Redacted)
	}
	r.replacer = strings.NewReplacer(pairs...)
}

// redact returns s with every known form of every secret replaced by Redacted.
func (r *redactor) redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.build()
	if r.replacer == nil {
		return s
	}
	return r.replacer.Replace(s)
}

// contains reports whether s holds any known form of any secret.
func (r *redactor) contains(s string) bool {
	if r == nil || s == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.build()
	for _, needle := range r.needles {
		if strings.Contains(s, needle) {
			return true
		}
	}
	return false
}

// secretForms returns the forms in which a server may echo secret: as is; form-encoded (as in
// the request body), path-encoded and percent-encoded with %20 for spaces (PHP's rawurlencode);
// JSON-escaped as Go writes it (with and without HTML escaping) and as PHP's json_encode writes
// it ("\/" and \u escapes); and Go-quoted, as net/http quotes a malformed answer in its errors.
func secretForms(secret string) []string {
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret),
		strings.ReplaceAll(url.QueryEscape(secret), "+", "%20"), phpJSONEscape(secret)}
	if quoted, err := json.Marshal(secret); err == nil {
		forms = append(forms, string(quoted[1:len(quoted)-1]))
	}
	var b strings.Builder
	encoder := json.NewEncoder(&b)
	encoder.SetEscapeHTML(false)
	if encoder.Encode(secret) == nil {
		quoted := strings.TrimSuffix(b.String(), "\n")
		forms = append(forms, quoted[1:len(quoted)-1])
	}
	quoted := strconv.Quote(secret)
	forms = append(forms, quoted[1:len(quoted)-1])
	return forms
}

// phpJSONEscape returns s as PHP's json_encode writes a string's contents by default: "/" as
// "\/", everything outside ASCII as lower-case \u escapes (surrogate pairs past U+FFFF).
func phpJSONEscape(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	writeU := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(hex[(r>>shift)&0xf])
		}
	}
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '"' || r == '\\' || r == '/':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || (r >= 0x80 && r <= 0xffff):
			writeU(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			writeU(r1)
			writeU(r2)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// redactError replaces the secrets r knows in all the server-provided text err carries: an
// *Error's type and message, an *UnexpectedResponseError's content type and detail (redirect
// targets, read errors), a *requestError's message (net/http quotes malformed answers in it). The
// errors are this request's own, so they are changed in place. It returns err.
func redactError(err error, r *redactor) error {
	if err == nil || r == nil {
		return err
	}
	var mauticErr *Error
	if errors.As(err, &mauticErr) {
		mauticErr.Type = r.redact(mauticErr.Type)
		mauticErr.Message = r.redact(mauticErr.Message)
	}
	var unexpected *UnexpectedResponseError
	if errors.As(err, &unexpected) {
		unexpected.ContentType = r.redact(unexpected.ContentType)
		unexpected.Detail = r.redact(unexpected.Detail)
	}
	var reqErr *requestError
	if errors.As(err, &reqErr) {
		reqErr.message = r.redact(reqErr.message)
	}
	return err
}

// answerTokens returns the access and refresh tokens a token answer body holds, in any shape the
// client reads: a JSON object's top-level strings, a form-encoded body, or a "refresh_token"
// pair in a body that is not valid JSON. They are secrets too, once read.
func answerTokens(body []byte) []string {
	var tokens []string
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil {
		tokens = append(tokens, jsonString(fields["access_token"]), jsonString(fields["refresh_token"]))
	} else if values, err := url.ParseQuery(strings.TrimSpace(string(body))); err == nil || len(values) > 0 {
		tokens = append(tokens, values.Get("access_token"), values.Get("refresh_token"))
	}
	return append(tokens, recoverRefreshToken(body))
}
