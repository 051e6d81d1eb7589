package policy

import (
	"strconv"
	"unicode/utf8"
)

// ARN returns the execute-api ARN of a request, as API Gateway prints it in
// denials: arn:aws:execute-api:REGION:ACCOUNT:API-ID/STAGE/METHOD/PATH with
// path's leading slash removed, so the root resource ends in "METHOD/".
func ARN(region, account, apiID, stage, method, path string) string {
	return string(appendARN(nil, region, account, apiID, stage, method, path))
}

func appendARN(dst []byte, region, account, apiID, stage, method, path string) []byte {
	dst = append(dst, "arn:aws:execute-api:"...)
	dst = append(dst, region...)
	dst = append(dst, ':')
	dst = append(dst, account...)
	dst = append(dst, ':')
	dst = append(dst, apiID...)
	dst = append(dst, '/')
	dst = append(dst, stage...)
	dst = append(dst, '/')
	dst = append(dst, method...)
	dst = append(dst, '/')
	if len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	return append(dst, path...)
}

// ARNFor is ARN for a Request under an Identity.
func ARNFor(id Identity, r *Request) string {
	return ARN(id.Region, id.Account, id.APIID, r.Stage, r.Method, r.Path)
}

// The denial body's text is API Gateway's and users match on it; do not
// reword. Note the capital M in "Message", unlike every other gateway error.
const (
	bodyPrefix   = `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: `
	explicitNote = ` with an explicit deny`
	bodySuffix   = `"}`
)

// DenyBody returns the 403 body for a request denied by a resource policy
// (or a route's allow_ips):
//
//	{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke on resource: ARN"}
//
// with " with an explicit deny" before the closing quote when explicit is
// true. The ARN is JSON-escaped (it carries the client's path), and its
// account id is masked as API Gateway masks it, all but the last four
// characters replaced by '*' (arn:aws:execute-api:us-east-1:********1234:…):
// the answer goes to whoever was denied.
func DenyBody(arn string, explicit bool) []byte {
	return AppendDenyBody(make([]byte, 0, len(bodyPrefix)+len(arn)+len(explicitNote)+len(bodySuffix)+8), arn, explicit)
}

// AppendDenyBody appends DenyBody's bytes to dst, for callers that reuse a
// buffer.
func AppendDenyBody(dst []byte, arn string, explicit bool) []byte {
	dst = append(dst, bodyPrefix...)
	if start, end, ok := accountField(arn); ok {
		dst = appendJSONString(dst, arn[:start])
		keep := end - 4
		if keep <= start {
			keep = end // an id of four characters or fewer is masked whole
		}
		for range keep - start {
			dst = append(dst, '*')
		}
		dst = appendJSONString(dst, arn[keep:])
	} else {
		dst = appendJSONString(dst, arn)
	}
	if explicit {
		dst = append(dst, explicitNote...)
	}
	return append(dst, bodySuffix...)
}

// accountField locates the account id of an ARN, its fifth ':'-separated
// field: arn[start:end].
func accountField(arn string) (start, end int, ok bool) {
	colons := 0
	for i := 0; i < len(arn); i++ {
		if arn[i] != ':' {
			continue
		}
		colons++
		switch colons {
		case 4:
			start = i + 1
		case 5:
			return start, i, true
		}
	}
	return 0, 0, false
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s escaped for the inside of a JSON string: '"'
// and '\\' get a backslash, control characters and U+2028/U+2029 become
// \u escapes, invalid UTF-8 becomes U+FFFD. Unlike encoding/json it keeps
// '<', '>' and '&' literal, as API Gateway does.
func appendJSONString(dst []byte, s string) []byte {
	start := 0 // s[start:i] is safe and not yet copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	return append(dst, s[start:]...)
}

func itoa(i int) string { return strconv.Itoa(i) }

func quote(s string) string { return strconv.Quote(s) }
