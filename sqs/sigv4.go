package sqs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"
	"time"
)

// maxClockSkew is how far a signed request's X-Amz-Date may be from the server's clock.
const maxClockSkew = 15 * time.Minute

// verifySigV4 checks a request's AWS Signature Version 4 (the Authorization header form)
// against creds. Region and service in the credential scope are taken as the client signed
// them: spool answers under any name.
func verifySigV4(r *http.Request, body []byte, creds Credentials, now time.Time) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errorf(errMissingAuth, "the request must be signed (AWS Signature Version 4): spool has credentials configured")
	}
	algo, rest, _ := strings.Cut(auth, " ")
	if algo != "AWS4-HMAC-SHA256" {
		return errorf(errInvalidSecurity, "unsupported signature algorithm %q: use AWS4-HMAC-SHA256", algo)
	}
	var credential, signed, signature string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			signature = v
		}
	}
	scopeParts := strings.Split(credential, "/")
	if len(scopeParts) != 5 || scopeParts[4] != "aws4_request" || signed == "" || signature == "" {
		return errorf(errInvalidSecurity, "malformed Authorization header")
	}
	keyID, date, region, service := scopeParts[0], scopeParts[1], scopeParts[2], scopeParts[3]
	secret, ok := creds.SecretKey(keyID)
	if !ok {
		return errorf(errInvalidClientID, "the security token included in the request is invalid: unknown access key %q", keyID)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, date) {
		return errorf(errInvalidSecurity, "missing or malformed X-Amz-Date")
	}
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return errorf(errRequestExpired, "signature expired: %s is more than %s from the server's time %s", amzDate, maxClockSkew, now.UTC().Format("20060102T150405Z"))
	}
	// The signature covers the body through its hash: a hash header must be the body's.
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		return errorf(errSignatureMismatch, "X-Amz-Content-Sha256 is not the SHA-256 of the body (unsigned payloads are not accepted)")
	}
	canonical := canonicalRequest(r, strings.Split(signed, ";"), payloadHash)
	crHash := sha256.Sum256([]byte(canonical))
	scope := date + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])
	key := hmacSHA256([]byte("AWS4"+secret), date)
	for _, s := range []string{region, service, "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return errorf(errSignatureMismatch, "the request signature we calculated does not match the signature you provided; check your AWS secret access key and signing method")
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalRequest builds SigV4's canonical request of r.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	// Services other than S3 escape the (already escaped) path once more.
	b.WriteString(sigEscape(path, false))
	b.WriteByte('\n')
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	first := true
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			if !first {
				b.WriteByte('&')
			}
			first = false
			b.WriteString(sigEscape(k, true) + "=" + sigEscape(v, true))
		}
	}
	b.WriteByte('\n')
	for _, h := range signed {
		var v string
		if h == "host" {
			v = r.Host
		} else {
			vals := r.Header.Values(h)
			for i, x := range vals {
				vals[i] = strings.Join(strings.Fields(x), " ")
			}
			v = strings.Join(vals, ",")
		}
		b.WriteString(h + ":" + v + "\n")
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// sigEscape percent-encodes all but SigV4's unreserved characters (and '/' in a path).
func sigEscape(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' && !encodeSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}
