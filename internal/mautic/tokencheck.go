package mautic

import (
	"errors"
	"fmt"
)

// Limits on the tokens a server issues. Mautic's are under 100 bytes; the limits leave room for
// other OAuth2 servers (JWTs) while keeping a hostile answer out of Secrets and headers.
const (
	// MaxAccessTokenBytes is the longest access token CheckAccessToken accepts.
	MaxAccessTokenBytes = 8 << 10
	// MaxRefreshTokenBytes is the longest refresh token CheckRefreshToken accepts.
	MaxRefreshTokenBytes = 8 << 10
)

// TokenKind names the kind of token an *InvalidTokenError is about.
type TokenKind string

const (
	// AccessTokenKind is an access token.
	AccessTokenKind TokenKind = "access token"
	// RefreshTokenKind is a refresh token.
	RefreshTokenKind TokenKind = "refresh token"
)

// InvalidTokenError is a token a server issued that cannot be used safely: empty, too long, or
// holding characters outside RFC 6750's b64token set (letters, digits, "-", ".", "_", "~", "+",
// "/", then "=" padding at the end), which could break an Authorization header or a Secret's
// consumers. It never holds the token.
type InvalidTokenError struct {
	// Kind is the kind of token.
	Kind TokenKind
	// Reason says what is wrong, without quoting the token.
	Reason string
}

// Error names the kind of token and the problem.
func (e *InvalidTokenError) Error() string {
	return fmt.Sprintf("the server issued an unusable %s: %s", e.Kind, e.Reason)
}

// CheckAccessToken reports an *InvalidTokenError when token is not a usable access token: empty,
// longer than MaxAccessTokenBytes, or not an RFC 6750 b64token.
func CheckAccessToken(token string) error {
	return checkToken(AccessTokenKind, token, MaxAccessTokenBytes)
}

// CheckRefreshToken reports an *InvalidTokenError when token is not a usable refresh token: empty,
// longer than MaxRefreshTokenBytes, or not an RFC 6750 b64token.
func CheckRefreshToken(token string) error {
	return checkToken(RefreshTokenKind, token, MaxRefreshTokenBytes)
}

// checkToken checks token against the b64token grammar, ^[A-Za-z0-9\-._~+/]+=*$, and limit.
func checkToken(kind TokenKind, token string, limit int) error {
	invalid := func(format string, args ...any) error {
		return &InvalidTokenError{Kind: kind, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case token == "":
		return invalid("it is empty")
	case len(token) > limit:
		return invalid("it is %d bytes long, more than the limit of %d", len(token), limit)
	}
	padding := false
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '=':
			if i == 0 {
				return invalid("it starts with \"=\" padding")
			}
			padding = true
		case padding:
			return invalid("it holds \"=\" before byte %d: \"=\" may only pad the end", i+1)
		case isB64TokenChar(c):
		default:
			return invalid("byte %d is %s; a token may hold only letters, digits, \"-._~+/\" and \"=\" padding at the end",
				i+1, describeByte(c))
		}
	}
	return nil
}

// isB64TokenChar reports whether c may appear before the padding of an RFC 6750 b64token.
func isB64TokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// describeByte names a byte that is not allowed in a token, without showing a letter or digit of
// the token (those are allowed anyway; only punctuation is named as itself).
func describeByte(c byte) string {
	switch {
	case c == ' ':
		return "a space"
	case c < 0x20 || c == 0x7f:
		return "a control character"
	case c >= 0x80:
		return "a non-ASCII byte"
	default:
		return fmt.Sprintf("%q", string(c))
	}
}

// invalidTokenReason returns the Reason of an *InvalidTokenError, or err's message.
func invalidTokenReason(err error) string {
	var invalid *InvalidTokenError
	if errors.As(err, &invalid) {
		return invalid.Reason
	}
	return err.Error()
}
