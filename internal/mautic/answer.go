package mautic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

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
	// secrets are the request's secrets and the answer's tokens, redacted from what errors quote.
	secrets *redactor
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
// a 2xx answer to a refresh_token grant. A new refresh token that fails CheckRefreshToken makes
// the answer unusable, with no refresh token recovered: it could be neither stored nor sent back
// safely. The access token is not checked here (see CheckAccessToken).
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
	if refreshToken != "" {
		if err := CheckRefreshToken(refreshToken); err != nil {
			unexpected := a.unexpected("a refresh_token that cannot be stored (" + invalidTokenReason(err) + ")")
			if !a.mayHaveRotated() {
				return nil, unexpected
			}
			return nil, &UnusableAnswerError{UnexpectedResponseError: unexpected, Grant: a.grant}
		}
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

// learnTokens adds the tokens the answer holds to the secrets an error must not quote. It is
// called when the answer gives an error, before any server text is put in it.
func (a *tokenAnswer) learnTokens() {
	a.secrets.add(answerTokens(a.body)...)
}

// errorAnswer reads an error answer into *Error.
func (a *tokenAnswer) errorAnswer(body []byte) *Error {
	a.learnTokens()
	parsed := parseRedactedErrorBody(OpToken, a.statusCode, body, a.secrets)
	parsed.Grant = a.grant
	return parsed
}

// unexpected describes the answer with detail, as an *UnexpectedResponseError.
func (a *tokenAnswer) unexpected(detail string) *UnexpectedResponseError {
	a.learnTokens()
	return &UnexpectedResponseError{Op: OpToken, StatusCode: a.statusCode, ContentType: serverContentType(a.contentType, a.secrets), Detail: detail}
}

// unusable describes an answer that cannot be used: *UnusableAnswerError, with the refresh token
// recovered from body, when the server may have rotated the refresh token, else
// *UnexpectedResponseError.
func (a *tokenAnswer) unusable(body []byte, detail string) error {
	unexpected := a.unexpected(detail)
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
// token that passes CheckRefreshToken is returned, as for a usable answer.
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

// plausibleToken returns s when it passes CheckRefreshToken, else "".
func plausibleToken(s string) string {
	if CheckRefreshToken(s) != nil {
		return ""
	}
	return s
}
