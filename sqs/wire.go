package sqs

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/spoolq/spool/internal/budget"
)

// maxBody bounds a request body: a batch of 10 messages of the largest size, with room.
const maxBody = 12 << 20

// maxIndex bounds the N of a query-protocol list member ("Attribute.N.Name").
const maxIndex = 1000

// request is every action's input in the AWS JSON shape; the query protocol is decoded
// into the same shape.
type request struct {
	action string
	host   string // the Host the client called: queue URLs are built on it

	QueueURL                    string            `json:"QueueUrl"`
	QueueName                   string            `json:"QueueName"`
	QueueNamePrefix             string            `json:"QueueNamePrefix"`
	QueueOwnerAWSAccountID      string            `json:"QueueOwnerAWSAccountId"`
	NextToken                   string            `json:"NextToken"`
	MaxResults                  *flexInt          `json:"MaxResults"`
	Attributes                  map[string]string `json:"Attributes"`
	Tags                        map[string]string `json:"tags"`
	TagsUpper                   map[string]string `json:"Tags"`
	TagKeys                     []string          `json:"TagKeys"`
	AttributeNames              []string          `json:"AttributeNames"`
	MessageSystemAttributeNames []string          `json:"MessageSystemAttributeNames"`
	MessageAttributeNames       []string          `json:"MessageAttributeNames"`
	MaxNumberOfMessages         *flexInt          `json:"MaxNumberOfMessages"`
	VisibilityTimeout           *flexInt          `json:"VisibilityTimeout"`
	WaitTimeSeconds             *flexInt          `json:"WaitTimeSeconds"`
	ReceiveRequestAttemptID     string            `json:"ReceiveRequestAttemptId"`
	ReceiptHandle               string            `json:"ReceiptHandle"`
	Entries                     []entry           `json:"Entries"`
	SourceArn                   string            `json:"SourceArn"`
	DestinationArn              string            `json:"DestinationArn"`
	MaxNumberOfMessagesPerSec   *flexInt          `json:"MaxNumberOfMessagesPerSecond"`
	TaskHandle                  string            `json:"TaskHandle"`
	message                                       // SendMessage's fields
}

// message is a message to send: SendMessage's fields, and each entry of SendMessageBatch.
type message struct {
	MessageBody             *string                `json:"MessageBody"`
	DelaySeconds            *flexInt               `json:"DelaySeconds"`
	MessageAttributes       map[string]messageAttr `json:"MessageAttributes"`
	MessageSystemAttributes map[string]messageAttr `json:"MessageSystemAttributes"`
	MessageGroupID          string                 `json:"MessageGroupId"`
	MessageDeduplicationID  string                 `json:"MessageDeduplicationId"`
}

// entry is one entry of a batch action.
type entry struct {
	ID                string   `json:"Id"`
	ReceiptHandle     string   `json:"ReceiptHandle"`
	VisibilityTimeout *flexInt `json:"VisibilityTimeout"`
	message
}

// messageAttr is a message attribute's value.
type messageAttr struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

// flexInt is an integer that the JSON protocol sends as a number and the query protocol
// (decoded through the same shape) as a string.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errorf(errInvalidParam, "%s is not an integer", b)
	}
	*f = flexInt(n)
	return nil
}

// intOr returns f's value, or def when absent.
func (f *flexInt) intOr(def int64) int64 {
	if f == nil {
		return def
	}
	return int64(*f)
}

// protocol writes answers in one wire protocol.
type protocol interface {
	write(w http.ResponseWriter, action string, out any)
	writeError(w http.ResponseWriter, e *apiError)
}

// decode reads one request in either protocol, after checking its signature.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request) (*request, protocol, error) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, nil, errorf(errInvalidAction, "method %s not allowed", r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, errorf(errTooLarge, "request body over %d bytes", maxBody)
		}
		if errors.Is(err, budget.ErrExceeded) {
			return nil, nil, errorf(errUnavailable, "spool holds as many request bytes as its memory budget allows: try again")
		}
		return nil, nil, errorf(errInvalidParam, "read request: %v", err)
	}
	var p protocol = queryProtocol{}
	target := r.Header.Get("X-Amz-Target")
	if target != "" {
		p = jsonProtocol{}
	}
	if h.opt.Credentials != nil {
		if err := verifySigV4(r, body, h.opt.Credentials, h.opt.Now()); err != nil {
			return nil, p, err
		}
	}
	var req *request
	if target != "" {
		req, err = decodeJSON(target, body)
	} else {
		req, err = decodeQuery(r, body)
	}
	if err != nil {
		return nil, p, err
	}
	req.host = r.Host
	return req, p, nil
}

// decodeJSON decodes an AWS JSON 1.0 request.
func decodeJSON(target string, body []byte) (*request, error) {
	action, ok := strings.CutPrefix(target, "AmazonSQS.")
	if !ok || action == "" {
		return nil, errorf(errInvalidAction, "X-Amz-Target %q is not AmazonSQS.<Action>", target)
	}
	req := &request{action: action}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	if err := json.Unmarshal(body, req); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, errorf(errInvalidParam, "request body: %v", err)
	}
	return req, nil
}

// decodeQuery decodes a query-protocol request: form fields in the body (or the URL), with
// list and map members flattened as Name.N[.Member], into the JSON shape.
func decodeQuery(r *http.Request, body []byte) (*request, error) {
	vals := r.URL.Query()
	if len(body) > 0 {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct != "" && ct != "application/x-www-form-urlencoded" {
			return nil, errorf(errInvalidAction, "content type %q: send X-Amz-Target with JSON, or a form", ct)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errorf(errInvalidParam, "form: %v", err)
		}
		for k, v := range form {
			vals[k] = append(vals[k], v...)
		}
	}
	action := vals.Get("Action")
	if action == "" {
		return nil, errorf(errMissingParam, "no Action (and no X-Amz-Target header)")
	}
	tree, err := queryTree(vals)
	if err != nil {
		return nil, err
	}
	shaped, err := json.Marshal(shapeQuery(tree, action))
	if err != nil {
		return nil, errorf(errInvalidParam, "form: %v", err)
	}
	req := &request{action: action}
	if err := json.Unmarshal(shaped, req); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, errorf(errInvalidParam, "form: %v", err)
	}
	if p := r.URL.EscapedPath(); req.QueueURL == "" && p != "" && p != "/" {
		// Older clients post to the queue URL itself.
		req.QueueURL = p
	}
	return req, nil
}

// node is a query-protocol member: a value, named children, or indexed children.
type node struct {
	val  string
	kids map[string]*node
}

// queryTree splits "A.1.B" keys into a tree.
func queryTree(vals url.Values) (*node, error) {
	root := &node{kids: map[string]*node{}}
	for k, vs := range vals {
		if k == "Action" || k == "Version" || strings.HasPrefix(k, "X-Amz-") {
			continue
		}
		cur := root
		for part := range strings.SplitSeq(k, ".") {
			if part == "" {
				return nil, errorf(errInvalidParam, "malformed parameter name %q", k)
			}
			if n, err := strconv.Atoi(part); err == nil && (n < 1 || n > maxIndex) {
				return nil, errorf(errInvalidParam, "parameter %q: index must be 1 to %d", k, maxIndex)
			}
			if cur.kids == nil {
				cur.kids = map[string]*node{}
			}
			next := cur.kids[part]
			if next == nil {
				next = &node{}
				cur.kids[part] = next
			}
			cur = next
		}
		if len(vs) > 0 {
			cur.val = vs[len(vs)-1]
		}
	}
	return root, nil
}

// indexed returns n's numbered children in order of their number.
func (n *node) indexed() []*node {
	type kv struct {
		i int
		n *node
	}
	var l []kv
	for k, c := range n.kids {
		if i, err := strconv.Atoi(k); err == nil {
			l = append(l, kv{i, c})
		}
	}
	sort.Slice(l, func(a, b int) bool { return l[a].i < l[b].i })
	out := make([]*node, len(l))
	for i, e := range l {
		out[i] = e.n
	}
	return out
}

func (n *node) get(path ...string) (string, bool) {
	for _, p := range path {
		if n == nil || n.kids == nil {
			return "", false
		}
		n = n.kids[p]
	}
	if n == nil {
		return "", false
	}
	return n.val, true
}

// shapeQuery turns a query tree into the JSON shape of request.
func shapeQuery(n *node, action string) map[string]any {
	out := map[string]any{}
	for k, c := range n.kids {
		switch {
		case k == "Attribute":
			out["Attributes"] = pairs(c, "Name", "Value")
		case k == "Tag":
			out["Tags"] = pairs(c, "Key", "Value")
		case k == "MessageAttribute" || k == "MessageSystemAttribute":
			m := map[string]any{}
			for _, e := range c.indexed() {
				name, _ := e.get("Name")
				v := map[string]any{}
				if e.kids != nil && e.kids["Value"] != nil {
					for vk, vc := range e.kids["Value"].kids {
						switch vk {
						case "StringListValue", "BinaryListValue":
							var l []string
							for _, x := range vc.indexed() {
								l = append(l, x.val)
							}
							v[vk+"s"] = l
						default:
							v[vk] = vc.val
						}
					}
				}
				m[name] = v
			}
			out[k+"s"] = m
		case k == "AttributeName" || k == "MessageAttributeName" || k == "MessageSystemAttributeName" || k == "TagKey":
			var l []string
			for _, e := range c.indexed() {
				l = append(l, e.val)
			}
			out[k+"s"] = l
		case strings.HasSuffix(k, "RequestEntry"):
			var l []any
			for _, e := range c.indexed() {
				l = append(l, shapeQuery(e, action))
			}
			out["Entries"] = l
		case c.kids != nil:
			// An unknown structured member: ignored, as SQS ignores unknown parameters.
		default:
			out[k] = c.val
		}
	}
	return out
}

// pairs turns Name.N.Key / Name.N.Value members into a map.
func pairs(n *node, key, value string) map[string]string {
	m := map[string]string{}
	for _, e := range n.indexed() {
		k, _ := e.get(key)
		v, _ := e.get(value)
		m[k] = v
	}
	return m
}

// requestID makes an id for the answer's metadata.
func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// jsonProtocol is AWS JSON 1.0.
type jsonProtocol struct{}

func (jsonProtocol) write(w http.ResponseWriter, _ string, out any) {
	b, err := json.Marshal(out)
	if err != nil {
		b = []byte("{}")
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", requestID())
	w.Write(b)
}

func (jsonProtocol) writeError(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.sqs#" + e.json, "message": e.msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", requestID())
	w.Header().Set("x-amzn-query-error", e.query+";"+e.fault())
	w.WriteHeader(e.status)
	w.Write(b)
}

// queryProtocol answers in XML.
type queryProtocol struct{}

const xmlNS = "http://queue.amazonaws.com/doc/2012-11-05/"

func (queryProtocol) write(w http.ResponseWriter, action string, out any) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<?xml version="1.0"?><%sResponse xmlns="%s"><%sResult>`, action, xmlNS, action)
	if out != nil {
		var generic any
		b, _ := json.Marshal(out)
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if d.Decode(&generic) == nil {
			if m, ok := generic.(map[string]any); ok {
				writeXMLFields(&buf, action, m)
			}
		}
	}
	fmt.Fprintf(&buf, `</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`, action, requestID(), action)
	w.Header().Set("Content-Type", "text/xml")
	w.Write(buf.Bytes())
}

func (queryProtocol) writeError(w http.ResponseWriter, e *apiError) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `<?xml version="1.0"?><ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>`, xmlNS, e.fault())
	xmlText(&buf, e.query)
	buf.WriteString("</Code><Message>")
	xmlText(&buf, e.msg)
	fmt.Fprintf(&buf, "</Message><Detail/></Error><RequestId>%s</RequestId></ErrorResponse>", requestID())
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	w.Write(buf.Bytes())
}

// writeXMLFields writes a JSON-shaped answer as the query protocol's XML: maps become
// repeated <Attribute>/<MessageAttribute>/<Tag> entries, lists are flattened.
func writeXMLFields(buf *bytes.Buffer, action string, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if v == nil {
			continue
		}
		switch k {
		case "Attributes", "Tags", "MessageAttributes", "MessageSystemAttributes":
			elem, kn := map[string][2]string{
				"Attributes": {"Attribute", "Name"}, "Tags": {"Tag", "Key"},
				"MessageAttributes": {"MessageAttribute", "Name"}, "MessageSystemAttributes": {"MessageSystemAttribute", "Name"},
			}[k][0], map[string]string{"Tags": "Key"}[k]
			if kn == "" {
				kn = "Name"
			}
			mm, _ := v.(map[string]any)
			names := make([]string, 0, len(mm))
			for n := range mm {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(buf, "<%s><%s>", elem, kn)
				xmlText(buf, n)
				fmt.Fprintf(buf, "</%s><Value>", kn)
				writeXMLValue(buf, action, mm[n])
				fmt.Fprintf(buf, "</Value></%s>", elem)
			}
			continue
		}
		if l, ok := v.([]any); ok {
			elem := map[string]string{
				"Messages": "Message", "QueueUrls": "QueueUrl", "queueUrls": "QueueUrl",
				"Successful": action + "ResultEntry", "Failed": "BatchResultErrorEntry",
				"Results":          "ListMessageMoveTasksResultEntry",
				"StringListValues": "StringListValue", "BinaryListValues": "BinaryListValue",
			}[k]
			if elem == "" {
				elem = k
			}
			for _, e := range l {
				fmt.Fprintf(buf, "<%s>", elem)
				writeXMLValue(buf, action, e)
				fmt.Fprintf(buf, "</%s>", elem)
			}
			continue
		}
		fmt.Fprintf(buf, "<%s>", k)
		writeXMLValue(buf, action, v)
		fmt.Fprintf(buf, "</%s>", k)
	}
}

func writeXMLValue(buf *bytes.Buffer, action string, v any) {
	switch v := v.(type) {
	case map[string]any:
		writeXMLFields(buf, action, v)
	case string:
		xmlText(buf, v)
	case json.Number:
		buf.WriteString(v.String())
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	}
}

// xmlText writes s escaped; carriage returns as references, so that XML parsers keep them,
// and characters XML cannot hold as U+FFFD.
func xmlText(buf *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
		case '<':
			buf.WriteString("&lt;")
		case '>':
			buf.WriteString("&gt;")
		case '&':
			buf.WriteString("&amp;")
		case '"':
			buf.WriteString("&quot;")
		case '\'':
			buf.WriteString("&apos;")
		case '\r':
			buf.WriteString("&#xD;")
		case '\t', '\n':
			buf.WriteRune(r)
		default:
			if r < 0x20 || r >= 0xD800 && r < 0xE000 || r == 0xFFFE || r == 0xFFFF {
				r = '\uFFFD' // not allowed in XML (a payload from another front)
			}
			buf.WriteRune(r)
		}
	}
}
