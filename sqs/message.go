package sqs

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spoolq/spool/engine"
)

const (
	maxBatch        = 10
	maxMessageAttrs = 10
	maxVisibility   = 43200 // seconds, per call; calls may extend a lease without limit
	maxWait         = 20
	maxDelaySeconds = 900
	maxAttrNameLen  = engine.MaxMetaKey - len(metaAttr)
	// delayAttr is the message attribute that delays a message beyond SQS's 15 minutes.
	delayAttr = "SpoolDelaySeconds"
	// Job metadata keys: message attributes, system attributes, the message group.
	metaAttr    = "sqs.attr."
	metaSysAttr = "sqs.sys."
	metaGroup   = "sqs.group"
	// defaultPriority is a sent message's priority: the HTTP API's default and beanstalkd
	// clients' usual one, so that jobs of all fronts in one queue are served in order.
	defaultPriority = 1024
)

// receiptHandle is a lease: the job, its lease token and its queue, in one opaque string.
func receiptHandle(queue string, id uint64, token string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(id, 10) + ":" + token + ":" + queue))
}

// parseReceipt reads a receipt handle of queue.
func parseReceipt(queue, handle string) (uint64, string, error) {
	bad := errorf(errReceiptInvalid, "the receipt handle %q is not valid", handle)
	if handle == "" {
		return 0, "", errorf(errMissingParam, "the request must contain the parameter ReceiptHandle")
	}
	b, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil {
		return 0, "", bad
	}
	ids, rest, ok := strings.Cut(string(b), ":")
	token, q, ok2 := strings.Cut(rest, ":")
	id, err := strconv.ParseUint(ids, 10, 64)
	if !ok || !ok2 || err != nil || token == "" || len(token) > 16 || q != queue {
		return 0, "", bad
	}
	if _, err := strconv.ParseUint(token, 16, 64); err != nil {
		return 0, "", bad
	}
	return id, token, nil
}

// validBody reports whether s holds only the characters SQS allows in a message.
func validBody(s string) bool {
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD: // U+FFFD also stands for invalid UTF-8: checked below
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return utf8.ValidString(s)
}

// validAttrName checks a message attribute name as SQS does.
func validAttrName(n string) error {
	if n == "" || len(n) > maxAttrNameLen {
		return errorf(errInvalidParam, "message attribute names are 1 to %d characters in spool", maxAttrNameLen)
	}
	l := strings.ToLower(n)
	if strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") || n[0] == '.' || n[len(n)-1] == '.' || strings.Contains(n, "..") {
		return errorf(errInvalidParam, "message attribute name %q is reserved or malformed", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errorf(errInvalidParam, "message attribute name %q: letters, digits, '-', '_' and '.' only", n)
		}
	}
	return nil
}

// attrSize counts an attribute toward the message size, as SQS does.
func attrSize(name string, a messageAttr) int {
	n := len(name) + len(a.DataType) + len(a.BinaryValue)
	if a.StringValue != nil {
		n += len(*a.StringValue)
	}
	return n
}

// encodeAttr is the job metadata value of a message attribute: "<DataType>:<value>", the
// value base64 for a binary one.
func encodeAttr(name string, a messageAttr) (string, error) {
	if err := validAttrName(name); err != nil {
		return "", err
	}
	base, _, _ := strings.Cut(a.DataType, ".")
	if strings.ContainsAny(a.DataType, ":") || len(a.DataType) > 256 {
		return "", errorf(errInvalidParam, "message attribute %s: data type %q is malformed", name, a.DataType)
	}
	if len(a.StringListValues) > 0 || len(a.BinaryListValues) > 0 {
		return "", errorf(errInvalidParam, "message attribute %s: list values are not supported", name)
	}
	var v string
	switch base {
	case "String", "Number":
		if a.StringValue == nil || *a.StringValue == "" {
			return "", errorf(errInvalidParam, "message attribute %s must contain a non-empty value of message attribute type %s", name, base)
		}
		if !validBody(*a.StringValue) {
			return "", errorf(errInvalidContents, "message attribute %s contains characters SQS does not allow", name)
		}
		if base == "Number" {
			if _, err := strconv.ParseFloat(*a.StringValue, 64); err != nil {
				return "", errorf(errInvalidParam, "message attribute %s: %q is not a number", name, *a.StringValue)
			}
		}
		v = *a.StringValue
	case "Binary":
		if len(a.BinaryValue) == 0 {
			return "", errorf(errInvalidParam, "message attribute %s must contain a non-empty binary value", name)
		}
		v = base64.StdEncoding.EncodeToString(a.BinaryValue)
	default:
		return "", errorf(errInvalidParam, "message attribute %s: data type must be String, Number or Binary (with an optional .label)", name)
	}
	out := a.DataType + ":" + v
	if len(out) > engine.MaxMetaValue {
		return "", errorf(errInvalidParam, "message attribute %s is over %d bytes: spool keeps attributes in job metadata", name, engine.MaxMetaValue)
	}
	return out, nil
}

// decodeAttr reverses encodeAttr.
func decodeAttr(v string) messageAttr {
	typ, val, ok := strings.Cut(v, ":")
	base, _, _ := strings.Cut(typ, ".")
	switch {
	case ok && base == "Binary":
		b, err := base64.StdEncoding.DecodeString(val)
		if err == nil {
			return messageAttr{DataType: typ, BinaryValue: b}
		}
	case ok && (base == "String" || base == "Number"):
		return messageAttr{DataType: typ, StringValue: &val}
	}
	return messageAttr{DataType: "String", StringValue: &v}
}

type sendResult struct {
	MessageID                    string `json:"MessageId"`
	MD5OfMessageBody             string `json:"MD5OfMessageBody"`
	MD5OfMessageAttributes       string `json:"MD5OfMessageAttributes,omitempty"`
	MD5OfMessageSystemAttributes string `json:"MD5OfMessageSystemAttributes,omitempty"`
}

// toEnqueue checks one message and turns it into an enqueue.
func (h *Handler) toEnqueue(qi *engine.QueueInfo, m *message) (engine.EnqueueRequest, error) {
	var r engine.EnqueueRequest
	if m.MessageBody == nil || *m.MessageBody == "" {
		return r, errorf(errMissingParam, "the request must contain the parameter MessageBody")
	}
	body := *m.MessageBody
	if !validBody(body) {
		return r, errorf(errInvalidContents, "invalid binary character in the message body: SQS allows #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")
	}
	if m.MessageDeduplicationID != "" {
		return r, errorf(errInvalidParam, "MessageDeduplicationId is for FIFO queues, which spool does not have")
	}
	limit := min(int64(h.opt.MaxMessageSize), queueAttrInt(qi, "MaximumMessageSize"))
	size := len(body)
	if len(m.MessageAttributes) > maxMessageAttrs {
		return r, errorf(errInvalidParam, "a message has at most %d message attributes", maxMessageAttrs)
	}
	meta := map[string]string{}
	var delay time.Duration
	hasDelay := false
	for n, a := range m.MessageAttributes {
		v, err := encodeAttr(n, a)
		if err != nil {
			return r, err
		}
		size += attrSize(n, a)
		meta[metaAttr+n] = v
		if n == delayAttr {
			secs, err := strconv.ParseInt(strings.TrimSpace(derefOr(a.StringValue)), 10, 64)
			if err != nil || secs < 0 || time.Duration(secs)*time.Second > engine.MaxDelay || a.DataType != "Number" && !strings.HasPrefix(a.DataType, "Number.") {
				return r, errorf(errInvalidParam, "message attribute %s must be a Number of whole seconds from 0 to %d", delayAttr, int64(engine.MaxDelay/time.Second))
			}
			delay, hasDelay = time.Duration(secs)*time.Second, true
		}
	}
	for n, a := range m.MessageSystemAttributes {
		if n != "AWSTraceHeader" || a.DataType != "String" || a.StringValue == nil {
			return r, errorf(errInvalidParam, "the only message system attribute is AWSTraceHeader, of type String")
		}
		v, err := encodeAttr(n, a)
		if err != nil {
			return r, err
		}
		meta[metaSysAttr+n] = v
	}
	if m.MessageGroupID != "" {
		if len(m.MessageGroupID) > 128 {
			return r, errorf(errInvalidParam, "MessageGroupId is at most 128 characters")
		}
		meta[metaGroup] = m.MessageGroupID
	}
	if int64(size) > limit {
		return r, errorf(errInvalidParam, "one or more parameters are invalid. Reason: Message must be shorter than %d bytes", limit)
	}
	if !hasDelay {
		secs := m.DelaySeconds.intOr(queueAttrInt(qi, "DelaySeconds"))
		if secs < 0 || secs > maxDelaySeconds {
			return r, errorf(errInvalidParam, "DelaySeconds must be from 0 to %d (longer: the message attribute %s)", maxDelaySeconds, delayAttr)
		}
		delay = time.Duration(secs) * time.Second
	}
	if len(meta) == 0 {
		meta = nil
	}
	return engine.EnqueueRequest{Queue: qi.Name, Payload: []byte(body), Priority: defaultPriority, Delay: delay, Metadata: meta}, nil
}

func derefOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func sent(j *engine.Job, m *message) sendResult {
	return sendResult{
		MessageID:                    strconv.FormatUint(j.ID, 10),
		MD5OfMessageBody:             md5Hex(*m.MessageBody),
		MD5OfMessageAttributes:       md5OfAttributes(m.MessageAttributes),
		MD5OfMessageSystemAttributes: md5OfAttributes(m.MessageSystemAttributes),
	}
}

func (h *Handler) sendMessage(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	er, err := h.toEnqueue(qi, &req.message)
	if err != nil {
		return nil, err
	}
	res, err := h.eng.Enqueue(ctx, []engine.EnqueueRequest{er})
	if err != nil {
		return nil, err
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	return sent(res[0].Job, &req.message), nil
}

type batchResultError struct {
	ID          string `json:"Id"`
	Code        string `json:"Code"`
	Message     string `json:"Message,omitempty"`
	SenderFault bool   `json:"SenderFault"`
}

type batchResult[T any] struct {
	Successful []T                `json:"Successful"`
	Failed     []batchResultError `json:"Failed"`
}

// checkEntries checks a batch's size and entry ids.
func checkEntries(entries []entry) error {
	if len(entries) == 0 {
		return errorf(errEmptyBatch, "there should be at least one entry in the request")
	}
	if len(entries) > maxBatch {
		return errorf(errTooManyEntries, "maximum number of entries per request are %d; you have sent %d", maxBatch, len(entries))
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.ID == "" || len(e.ID) > 80 || strings.IndexFunc(e.ID, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) >= 0 {
			return errorf(errInvalidBatchID, "a batch entry id is 1 to 80 alphanumeric characters, hyphens and underscores: %q", e.ID)
		}
		if seen[e.ID] {
			return errorf(errIDsNotDistinct, "id %s repeated", e.ID)
		}
		seen[e.ID] = true
	}
	return nil
}

func (h *Handler) sendMessageBatch(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := checkEntries(req.Entries); err != nil {
		return nil, err
	}
	out := batchResult[struct {
		ID string `json:"Id"`
		sendResult
	}]{}
	var reqs []engine.EnqueueRequest
	var idx []int
	total := 0
	for i := range req.Entries {
		e := &req.Entries[i]
		er, err := h.toEnqueue(qi, &e.message)
		if err != nil {
			out.Failed = append(out.Failed, batchError(e.ID, err))
			continue
		}
		total += len(er.Payload)
		reqs, idx = append(reqs, er), append(idx, i)
	}
	if limit := min(int64(h.opt.MaxMessageSize), queueAttrInt(qi, "MaximumMessageSize")); int64(total) > limit {
		return nil, errorf(errBatchTooLong, "batch requests may total at most %d bytes", limit)
	}
	if len(reqs) > 0 {
		res, err := h.eng.Enqueue(ctx, reqs)
		if err != nil {
			return nil, err
		}
		for k, r := range res {
			e := &req.Entries[idx[k]]
			if r.Err != nil {
				out.Failed = append(out.Failed, batchError(e.ID, r.Err))
				continue
			}
			out.Successful = append(out.Successful, struct {
				ID string `json:"Id"`
				sendResult
			}{e.ID, sent(r.Job, &e.message)})
		}
	}
	return out, nil
}

type receivedMessage struct {
	MessageID              string                 `json:"MessageId"`
	ReceiptHandle          string                 `json:"ReceiptHandle"`
	MD5OfBody              string                 `json:"MD5OfBody"`
	Body                   string                 `json:"Body"`
	Attributes             map[string]string      `json:"Attributes,omitempty"`
	MD5OfMessageAttributes string                 `json:"MD5OfMessageAttributes,omitempty"`
	MessageAttributes      map[string]messageAttr `json:"MessageAttributes,omitempty"`
}

func (h *Handler) receiveMessage(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	max := req.MaxNumberOfMessages.intOr(1)
	if max < 1 || max > maxBatch {
		return nil, errorf(errInvalidParam, "value %d for parameter MaxNumberOfMessages is invalid. Reason: must be between 1 and %d, if provided", max, maxBatch)
	}
	wait := req.WaitTimeSeconds.intOr(queueAttrInt(qi, "ReceiveMessageWaitTimeSeconds"))
	if wait < 0 || wait > maxWait {
		return nil, errorf(errInvalidParam, "value %d for parameter WaitTimeSeconds is invalid. Reason: must be >= 0 and <= %d, if provided", wait, maxWait)
	}
	vis := req.VisibilityTimeout.intOr(-1)
	if req.VisibilityTimeout != nil && (vis < 0 || vis > maxVisibility) {
		return nil, errorf(errInvalidParam, "value %d for parameter VisibilityTimeout is invalid. Reason: must be from 0 to %d", vis, maxVisibility)
	}
	// Names that are no message system attribute are ignored: the legacy AttributeNames
	// is typed as queue attribute names, and clients send those.
	sysNames := append(slices.Clone(req.AttributeNames), req.MessageSystemAttributeNames...)
	select {
	case <-h.draining:
		wait = 0
	default:
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.draining:
			cancel()
		case <-rctx.Done():
		}
	}()
	res, err := h.eng.Reserve(rctx, engine.ReserveRequest{Queues: []string{qi.Name}, Max: int(max), Wait: time.Duration(wait) * time.Second, Worker: "sqs"})
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.Canceled) {
			// Draining: the engine gave the jobs back; answer with none.
			return struct {
				Messages []receivedMessage `json:"Messages,omitempty"`
			}{}, nil
		}
		return nil, err
	}
	out := struct {
		Messages []receivedMessage `json:"Messages,omitempty"`
	}{}
	for _, r := range res.Jobs {
		j := r.Job
		if vis >= 0 && time.Duration(vis)*time.Second != j.Lease {
			if err := h.setVisibility(ctx, j.ID, r.Token, vis); err != nil {
				h.log.Warn("sqs receive: visibility timeout", "job", j.ID, "err", err)
			}
		}
		out.Messages = append(out.Messages, h.received(qi.Name, r, sysNames, req.MessageAttributeNames))
	}
	return out, nil
}

// setVisibility sets a lease's remaining time: 0 gives the job back at once (a failed
// attempt, retried at once), otherwise the lease is extended or shortened to secs.
func (h *Handler) setVisibility(ctx context.Context, id uint64, token string, secs int64) error {
	if secs == 0 {
		zero := time.Duration(0)
		_, err := h.eng.Fail(ctx, id, token, engine.FailRequest{Error: "visibility timeout set to 0", RetryIn: &zero})
		return err
	}
	_, err := h.eng.Touch(ctx, id, token, time.Duration(secs)*time.Second)
	return err
}

// received builds a received message with the attributes asked for.
func (h *Handler) received(queue string, r engine.Reserved, sysNames, attrNames []string) receivedMessage {
	j := r.Job
	body := strings.ToValidUTF8(string(j.Payload), "\uFFFD")
	m := receivedMessage{
		MessageID:     strconv.FormatUint(j.ID, 10),
		ReceiptHandle: receiptHandle(queue, j.ID, r.Token),
		MD5OfBody:     md5Hex(body),
		Body:          body,
	}
	all := slices.Contains(sysNames, "All")
	sys := map[string]string{}
	add := func(n, v string) {
		if v != "" && (all || slices.Contains(sysNames, n)) {
			sys[n] = v
		}
	}
	ms := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	add("ApproximateReceiveCount", strconv.Itoa(j.Attempts))
	add("SentTimestamp", ms(j.CreatedAt))
	add("ApproximateFirstReceiveTimestamp", ms(cmpTime(j.FirstReservedAt, j.ReservedAt)))
	add("SenderId", Account)
	if v, ok := j.Metadata[metaSysAttr+"AWSTraceHeader"]; ok {
		add("AWSTraceHeader", derefOr(decodeAttr(v).StringValue))
	}
	add("MessageGroupId", j.Metadata[metaGroup])
	if len(sys) > 0 {
		m.Attributes = sys
	}
	if len(attrNames) > 0 {
		attrs := map[string]messageAttr{}
		for k, v := range j.Metadata {
			name, ok := strings.CutPrefix(k, metaAttr)
			a := decodeAttr(v)
			if !ok {
				if strings.HasPrefix(k, "sqs.") || validAttrName(k) != nil {
					continue
				}
				name, a = k, messageAttr{DataType: "String", StringValue: &v} // metadata set by another front
			}
			if wantAttr(attrNames, name) {
				attrs[name] = a
			}
		}
		if len(attrs) > 0 {
			m.MessageAttributes = attrs
			m.MD5OfMessageAttributes = md5OfAttributes(attrs)
		}
	}
	return m
}

func cmpTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// wantAttr matches a message attribute name against MessageAttributeNames: "All", ".*",
// a name, or a prefix ending in ".*".
func wantAttr(names []string, n string) bool {
	for _, w := range names {
		if w == "All" || w == ".*" || w == n {
			return true
		}
		if p, ok := strings.CutSuffix(w, ".*"); ok && strings.HasPrefix(n, p+".") {
			return true
		}
	}
	return false
}

// leaseGone reports errors that mean the receipt handle's lease is over.
func leaseGone(err error) bool {
	return errors.Is(err, engine.ErrLeaseLost) || errors.Is(err, engine.ErrJobNotFound) || errors.Is(err, engine.ErrWrongState)
}

// deletes acks the entries' leases; a lease already over counts as deleted, as SQS
// answers a delete with an old receipt handle.
func (h *Handler) deletes(ctx context.Context, queue string, entries []entry) ([]error, error) {
	errs := make([]error, len(entries))
	var reqs []engine.AckRequest
	var idx []int
	for i, e := range entries {
		id, token, err := parseReceipt(queue, e.ReceiptHandle)
		if err != nil {
			errs[i] = err
			continue
		}
		reqs, idx = append(reqs, engine.AckRequest{ID: id, Token: token}), append(idx, i)
	}
	if len(reqs) == 0 {
		return errs, nil
	}
	res, err := h.eng.AckBatch(ctx, reqs)
	if err != nil {
		return nil, err
	}
	for k, r := range res {
		if r.Err != nil && !leaseGone(r.Err) {
			errs[idx[k]] = r.Err
		}
	}
	return errs, nil
}

func (h *Handler) deleteMessage(ctx context.Context, req *request) (any, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	errs, err := h.deletes(ctx, name, []entry{{ReceiptHandle: req.ReceiptHandle}})
	if err != nil {
		return nil, err
	}
	return empty{}, errs[0]
}

type idResult struct {
	ID string `json:"Id"`
}

func (h *Handler) deleteMessageBatch(ctx context.Context, req *request) (any, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	if err := checkEntries(req.Entries); err != nil {
		return nil, err
	}
	errs, err := h.deletes(ctx, name, req.Entries)
	if err != nil {
		return nil, err
	}
	out := batchResult[idResult]{}
	for i, e := range req.Entries {
		if errs[i] != nil {
			out.Failed = append(out.Failed, batchError(e.ID, errs[i]))
		} else {
			out.Successful = append(out.Successful, idResult{e.ID})
		}
	}
	return out, nil
}

// changeVisibility sets one lease's remaining time.
func (h *Handler) changeVisibility(ctx context.Context, queue, handle string, vt *flexInt) error {
	id, token, err := parseReceipt(queue, handle)
	if err != nil {
		return err
	}
	if vt == nil {
		return errorf(errMissingParam, "the request must contain the parameter VisibilityTimeout")
	}
	if *vt < 0 || *vt > maxVisibility {
		return errorf(errInvalidParam, "value %d for parameter VisibilityTimeout is invalid. Reason: must be from 0 to %d", *vt, maxVisibility)
	}
	if err := h.setVisibility(ctx, id, token, int64(*vt)); err != nil {
		if leaseGone(err) {
			return errorf(errNotInflight, "the message referred to is not in flight")
		}
		return err
	}
	return nil
}

func (h *Handler) changeMessageVisibility(ctx context.Context, req *request) (any, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	return empty{}, h.changeVisibility(ctx, name, req.ReceiptHandle, req.VisibilityTimeout)
}

func (h *Handler) changeMessageVisibilityBatch(ctx context.Context, req *request) (any, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	if err := checkEntries(req.Entries); err != nil {
		return nil, err
	}
	out := batchResult[idResult]{}
	for _, e := range req.Entries {
		if err := h.changeVisibility(ctx, name, e.ReceiptHandle, e.VisibilityTimeout); err != nil {
			if ae := asAPIError(err); ae.status >= 500 {
				return nil, err
			}
			out.Failed = append(out.Failed, batchError(e.ID, err))
			continue
		}
		out.Successful = append(out.Successful, idResult{e.ID})
	}
	return out, nil
}
