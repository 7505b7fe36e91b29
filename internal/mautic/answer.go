package mautic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// maxRecoveredTokenBytes bounds a refresh token recovered from an unusable answer (Mautic's are
// under 100 bytes).
const maxRecoveredTokenBytes = 4096

// tokenAnswer is a token endpoint answer as guardedTransport read it.
type tokenAnswer struct {
	// grant is the grant of the request.
	grant Grant
	// statusCode is the HTTP status.
	statusCode int
	// contentType is the Content-Type header as sent.
	contentType string
	// body is what was read: at most limit+1 bytes, so that an oversized body shows.
	body []byte
	// readErr is the error that ended reading the body early, if any.
	readErr error
	// limit is the body size limit, Options.MaxBodyBytes.
	limit int64
}

// successful reports whether the status is 2xx.
func (a *tokenAnswer) successful() bool {
	return a.statusCode >= 200 && a.statusCode < 300
}

// mayHaveRotated reports whether the answer is a 2xx to a refresh_token grant: the server may
// have deleted the presented refresh token and issued a new one.
func (a *tokenAnswer) mayHaveRotated() bool {
	return a.grant == GrantRefreshToken && a.successful()
}

// token reads the answer leniently. A usable 2xx answer gives the Token (with presented as its
// refresh token when a refresh_token grant's answer holds none: the server does not rotate). An
// error answer gives *Error; anything else *UnexpectedResponseError, or *UnusableAnswerError for
// a 2xx answer to a refresh_token grant.
func (a *tokenAnswer) token(presented string) (*Token, error) {
	body := a.body
	tooLarge := int64(len(body)) > a.limit
	if tooLarge {
		body = body[:a.limit]
	}
	switch {
	case a.readErr != nil:
		return nil, a.unusable(body, fmt.Sprintf("an answer cut short (%v)", a.readErr))
	case !isJSONMediaType(a.contentType):
		return nil, a.unusable(body, "not JSON")
	case tooLarge:
		return nil, a.unusable(body, fmt.Sprintf("a body larger than %d bytes", a.limit))
	case !json.Valid(body):
		return nil, a.unusable(body, "malformed JSON")
	case !a.successful():
		return nil, a.errorAnswer(body)
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil {
		return nil, a.unusable(body, "a JSON value that is not an object")
	}
	accessToken := jsonString(fields["access_token"])
	if accessToken == "" {
		// Some servers answer an error with 200.
		if _, hasErrors := fields["errors"]; hasErrors || jsonString(fields["error"]) != "" {
			return nil, a.errorAnswer(body)
		}
		return nil, a.unusable(body, "no access_token")
	}
	expires, ok := expiresIn(fields["expires_in"])
	if !ok {
		return nil, a.unusable(body, "an expires_in that is not a number")
	}
	refreshToken, ok := optionalString(fields["refresh_token"])
	if !ok {
		return nil, a.unusable(body, "a refresh_token that is not a string")
	}
	if refreshToken == "" && a.grant == GrantRefreshToken {
		refreshToken = presented
	}
	return &Token{
		AccessToken:  accessToken,
		TokenType:    strings.ToLower(jsonString(fields["token_type"])),
		RefreshToken: refreshToken,
		ExpiresIn:    expires,
	}, nil
}

// errorAnswer reads an error answer into *Error.
func (a *tokenAnswer) errorAnswer(body []byte) *Error {
	parsed := parseErrorBody(OpToken, a.statusCode, body)
	parsed.Grant = a.grant
	return parsed
}

// unusable describes an answer that cannot be used: *UnusableAnswerError, with the refresh token
// recovered from body, when the server may have rotated the refresh token, else
// *UnexpectedResponseError.
func (a *tokenAnswer) unusable(body []byte, detail string) error {
	unexpected := &UnexpectedResponseError{Op: OpToken, StatusCode: a.statusCode, ContentType: a.contentType, Detail: detail}
	if !a.mayHaveRotated() {
		return unexpected
	}
	return &UnusableAnswerError{UnexpectedResponseError: unexpected, Grant: a.grant, RefreshToken: recoverRefreshToken(body)}
}

// optionalString reads a JSON string that may be absent or null ("" and true); anything other
// than a string gives false.
func optionalString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// refreshTokenPattern finds "refresh_token": "<JSON string>" in a body that is not valid JSON;
// the closing quote is required, so a string cut short by truncation never matches.
var refreshTokenPattern = regexp.MustCompile(`"refresh_token"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.)*")`)

// recoverRefreshToken returns the refresh token held by an answer that cannot be used, or "":
// the top-level "refresh_token" of a JSON object; else the refresh_token of a form-encoded body
// (one that does not start like JSON or markup); else, when the body is not valid JSON (cut
// short, malformed, wrapped in a page), the first "refresh_token": "..." pair found in it. Only a
// plausible token is returned: 1 to maxRecoveredTokenBytes printable ASCII characters, as
// RFC 6749 allows.
func recoverRefreshToken(body []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil {
		return plausibleToken(jsonString(fields["refresh_token"]))
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && !strings.ContainsRune(`{["<`, rune(trimmed[0])) {
		values, _ := url.ParseQuery(string(trimmed)) // a bad pair elsewhere does not spoil refresh_token
		if token := plausibleToken(values.Get("refresh_token")); token != "" {
			return token
		}
	}
	if json.Valid(body) {
		return ""
	}
	for _, match := range refreshTokenPattern.FindAllSubmatchIndex(body, -1) {
		var s string
		if json.Unmarshal(body[match[2]:match[3]], &s) == nil {
			if token := plausibleToken(s); token != "" {
				return token
			}
		}
	}
	return ""
}

// plausibleToken returns s when it can be a refresh token (RFC 6749's 1*VSCHAR, bounded), else "".
func plausibleToken(s string) string {
	if s == "" || len(s) > maxRecoveredTokenBytes {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return ""
		}
	}
	return s
}
