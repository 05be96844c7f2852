package sqs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spoolq/spool/engine"
)

const (
	defaultMaxMessageSize = 256 << 10
	// noRedriveAttempts is a queue's attempts without a redrive policy: SQS receives a
	// message without limit, spool buries it after this many.
	noRedriveAttempts = engine.MaxMaxAttempts
	maxTags           = 50
	maxPage           = 1000
	// attrPrefix and tagPrefix start the keys of SQS attributes and tags in the queue's
	// engine attributes.
	attrPrefix = "sqs."
	tagPrefix  = "sqs.tag."
)

// storedAttr is a queue attribute the front keeps in the queue's engine attributes: its
// default and its check.
type storedAttr struct {
	def   string
	check func(string) error
}

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return errorf(errInvalidAttrValue, "must be an integer from %d to %d", lo, hi)
		}
		return nil
	}
}

func anyJSON(v string) error {
	if v != "" && !json.Valid([]byte(v)) {
		return errorf(errInvalidAttrValue, "must be JSON")
	}
	return nil
}

func anyValue(string) error { return nil }

var storedAttrs = map[string]storedAttr{
	"DelaySeconds":                  {"0", intRange(0, 900)},
	"MessageRetentionPeriod":        {"345600", intRange(60, 1209600)},
	"ReceiveMessageWaitTimeSeconds": {"0", intRange(0, 20)},
	"MaximumMessageSize":            {"262144", intRange(1024, 1<<20)},
	"RedriveAllowPolicy":            {"", anyJSON},
	"Policy":                        {"", anyJSON},
	"KmsMasterKeyId":                {"", anyValue},
	"KmsDataKeyReusePeriodSeconds":  {"", intRange(60, 86400)},
	"SqsManagedSseEnabled":          {"", anyValue},
}

// readOnlyAttrs are answered by GetQueueAttributes and refused by SetQueueAttributes.
var readOnlyAttrs = []string{
	"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn",
}

// fifoAttrs belong to FIFO queues, which spool does not have.
var fifoAttrs = []string{"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}

// queueAttr returns a stored attribute's value or its default.
func queueAttr(qi *engine.QueueInfo, name string) string {
	if v, ok := qi.Attributes[attrPrefix+name]; ok {
		return v
	}
	return storedAttrs[name].def
}

func queueAttrInt(qi *engine.QueueInfo, name string) int64 {
	n, _ := strconv.ParseInt(queueAttr(qi, name), 10, 64)
	return n
}

// queueURL is the URL of queue name as seen from host.
func (h *Handler) queueURL(host, name string) string {
	return "http://" + host + "/" + Account + "/" + url.PathEscape(name)
}

func (h *Handler) queueArn(name string) string {
	return "arn:aws:sqs:" + h.opt.Region + ":" + Account + ":" + name
}

// arnQueue returns the queue an ARN names.
func arnQueue(arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", errorf(errInvalidParam, "%q is not an SQS queue ARN (arn:aws:sqs:<region>:<account>:<queue>)", arn)
	}
	return parts[5], nil
}

// queueName returns the queue the request's QueueUrl names: its last path segment. The
// host and account are not checked: a client may reach spool under any name.
func queueName(req *request) (string, error) {
	if req.QueueURL == "" {
		return "", errorf(errMissingParam, "the request must contain the parameter QueueUrl")
	}
	u, err := url.Parse(req.QueueURL)
	if err != nil {
		return "", errorf(errInvalidParam, "QueueUrl %q: %v", req.QueueURL, err)
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	seg := path[strings.LastIndexByte(path, '/')+1:]
	name, err := url.PathUnescape(seg)
	if err != nil || name == "" || engine.ValidateQueueName(name) != nil {
		return "", errorf(errInvalidParam, "QueueUrl %q does not name a queue (http://host/%s/<queue>)", req.QueueURL, Account)
	}
	return name, nil
}

// queue returns the configuration of the request's queue: QueueDoesNotExist if there is none.
func (h *Handler) queue(ctx context.Context, req *request) (*engine.QueueInfo, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	return h.eng.QueueConfig(ctx, name)
}

// validSQSName checks a name for CreateQueue: SQS's alphabet, so that its URL and ARN are
// plain. Queues made by other fronts may have other names and are served all the same.
func validSQSName(name string) error {
	if strings.HasSuffix(name, ".fifo") {
		return errorf(errUnsupported, "FIFO queues are not supported by spool: use a standard queue (spool keeps FIFO order within a priority)")
	}
	if name == "" || len(name) > 80 {
		return errorf(errInvalidParam, "queue names are 1 to 80 characters")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return errorf(errInvalidParam, "queue names may contain only alphanumeric characters, hyphens (-) and underscores (_)")
		}
	}
	return nil
}

type queueURLResult struct {
	QueueURL string `json:"QueueUrl"`
}

func (h *Handler) createQueue(ctx context.Context, req *request) (any, error) {
	if req.QueueName == "" {
		return nil, errorf(errMissingParam, "the request must contain the parameter QueueName")
	}
	name := req.QueueName
	if err := validSQSName(name); err != nil {
		return nil, err
	}
	tags := req.TagsUpper
	if len(req.Tags) > 0 {
		tags = req.Tags
	}
	if err := checkTags(tags); err != nil {
		return nil, err
	}
	if err := h.checkAttributes(req.Attributes); err != nil {
		return nil, err
	}
	if err := h.checkRedriveTarget(ctx, req.Attributes); err != nil {
		return nil, err
	}
	qi, err := h.eng.QueueConfig(ctx, name)
	switch {
	case err == nil:
		// Exists: the same attributes (or none) give its URL, others an error.
		cur, err := h.attributes(ctx, qi, []string{"All"})
		if err != nil {
			return nil, err
		}
		for k, v := range req.Attributes {
			if c := cur[k]; !sameAttr(k, c, v) {
				return nil, errorf(errQueueExists, "a queue named %s exists with a different value for attribute %s", name, k)
			}
		}
		return queueURLResult{h.queueURL(req.host, name)}, nil
	case !errors.Is(err, engine.ErrQueueNotFound):
		return nil, err
	}
	s := engine.QueueSettings{MaxAttempts: noRedriveAttempts}
	if _, err := h.eng.PutQueue(ctx, name, s); err != nil {
		return nil, err
	}
	set := map[string]string{}
	for k, v := range tags {
		set[tagPrefix+k] = v
	}
	if err := h.setAttributes(ctx, name, req.Attributes, set); err != nil {
		return nil, err
	}
	return queueURLResult{h.queueURL(req.host, name)}, nil
}

// sameAttr reports whether an attribute's current value cur (empty: unset) and v agree.
func sameAttr(name, cur, v string) bool {
	switch {
	case name == "RedrivePolicy":
		dc, nc, err1 := parseRedrive(cur)
		dv, nv, err2 := parseRedrive(v)
		return err1 == nil && err2 == nil && dc == dv && nc == nv
	case name == "FifoQueue":
		return v == "false"
	case cur == "":
		return v == storedAttrs[name].def
	}
	return cur == v
}

func (h *Handler) getQueueURL(ctx context.Context, req *request) (any, error) {
	if req.QueueName == "" {
		return nil, errorf(errMissingParam, "the request must contain the parameter QueueName")
	}
	if _, err := h.eng.QueueConfig(ctx, req.QueueName); err != nil {
		return nil, err
	}
	return queueURLResult{h.queueURL(req.host, req.QueueName)}, nil
}

type listQueuesResult struct {
	QueueUrls []string `json:"QueueUrls,omitempty"`
	NextToken string   `json:"NextToken,omitempty"`
}

// page cuts names after the token's name to at most MaxResults; without MaxResults, the
// first 1,000 and no token (as SQS).
func page(req *request, names []string) ([]string, string, error) {
	limit := req.MaxResults.intOr(0)
	if req.MaxResults != nil && (limit < 1 || limit > maxPage) {
		return nil, "", errorf(errInvalidParam, "MaxResults must be from 1 to %d", maxPage)
	}
	if req.NextToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(req.NextToken)
		if err != nil || req.MaxResults == nil {
			return nil, "", errorf(errInvalidParam, "invalid NextToken")
		}
		i, found := slices.BinarySearch(names, string(after))
		if found {
			i++
		}
		names = names[i:]
	}
	if req.MaxResults == nil {
		return names[:min(len(names), maxPage)], "", nil
	}
	if len(names) > int(limit) {
		names = names[:limit]
		return names, base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1])), nil
	}
	return names, "", nil
}

func (h *Handler) listQueues(_ context.Context, req *request) (any, error) {
	var names []string
	for _, n := range h.eng.QueueNames() {
		if strings.HasPrefix(n, req.QueueNamePrefix) {
			names = append(names, n)
		}
	}
	names, next, err := page(req, names)
	if err != nil {
		return nil, err
	}
	out := listQueuesResult{NextToken: next}
	for _, n := range names {
		out.QueueUrls = append(out.QueueUrls, h.queueURL(req.host, n))
	}
	return out, nil
}

type empty struct{}

func (h *Handler) deleteQueue(ctx context.Context, req *request) (any, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	return empty{}, h.eng.DeleteQueue(ctx, name)
}

func (h *Handler) purgeQueue(ctx context.Context, req *request) (any, error) {
	name, err := queueName(req)
	if err != nil {
		return nil, err
	}
	_, err = h.eng.Purge(ctx, name, "")
	return empty{}, err
}

type attributesResult struct {
	Attributes map[string]string `json:"Attributes,omitempty"`
}

func (h *Handler) getQueueAttributes(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	names := req.AttributeNames
	if len(names) == 0 {
		return attributesResult{}, nil
	}
	attrs, err := h.attributes(ctx, qi, names)
	if err != nil {
		return nil, err
	}
	return attributesResult{attrs}, nil
}

// attributes returns the named queue attributes ("All": every one).
func (h *Handler) attributes(ctx context.Context, qi *engine.QueueInfo, names []string) (map[string]string, error) {
	all := slices.Contains(names, "All")
	want := func(n string) bool { return all || slices.Contains(names, n) }
	for _, n := range names {
		_, stored := storedAttrs[n]
		if n != "All" && n != "VisibilityTimeout" && n != "RedrivePolicy" && !stored &&
			!slices.Contains(readOnlyAttrs, n) && !slices.Contains(fifoAttrs, n) {
			return nil, errorf(errInvalidAttrName, "unknown attribute %s", n)
		}
	}
	out := map[string]string{}
	if want("ApproximateNumberOfMessages") || want("ApproximateNumberOfMessagesNotVisible") || want("ApproximateNumberOfMessagesDelayed") {
		full, err := h.eng.Queue(ctx, qi.Name)
		if err != nil {
			return nil, err
		}
		st := full.Stats
		for n, v := range map[string]int64{
			"ApproximateNumberOfMessages": st.Ready, "ApproximateNumberOfMessagesNotVisible": st.Reserved,
			"ApproximateNumberOfMessagesDelayed": st.Delayed,
		} {
			if want(n) {
				out[n] = strconv.FormatInt(v, 10)
			}
		}
	}
	set := func(n, v string) {
		if want(n) && v != "" {
			out[n] = v
		}
	}
	set("VisibilityTimeout", strconv.FormatInt(int64(qi.Settings.Lease/time.Second), 10))
	for n := range storedAttrs {
		set(n, queueAttr(qi, n))
	}
	created := strconv.FormatInt(qi.CreatedAt.Unix(), 10)
	set("CreatedTimestamp", created)
	set("LastModifiedTimestamp", cmpOr(qi.Attributes[attrPrefix+"LastModifiedTimestamp"], created))
	set("QueueArn", h.queueArn(qi.Name))
	if qi.DeadLetter != "" {
		b, _ := json.Marshal(map[string]any{"deadLetterTargetArn": h.queueArn(qi.DeadLetter), "maxReceiveCount": qi.Settings.MaxAttempts})
		set("RedrivePolicy", string(b))
	}
	return out, nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// checkAttributes checks attributes to set, without setting them.
func (h *Handler) checkAttributes(attrs map[string]string) error {
	for k, v := range attrs {
		switch {
		case k == "VisibilityTimeout":
			if err := intRange(0, 43200)(v); err != nil {
				return errorf(errInvalidAttrValue, "VisibilityTimeout: %s", err.(*apiError).msg)
			}
			if v == "0" {
				return errorf(errInvalidAttrValue, "VisibilityTimeout: spool's shortest visibility timeout is 1 second")
			}
		case k == "RedrivePolicy":
			if _, _, err := parseRedrive(v); err != nil {
				return err
			}
		case k == "FifoQueue":
			if v != "false" {
				return errorf(errUnsupported, "FIFO queues are not supported by spool: use a standard queue")
			}
		case slices.Contains(fifoAttrs, k):
			return errorf(errInvalidAttrName, "%s applies to FIFO queues only, which spool does not have", k)
		case slices.Contains(readOnlyAttrs, k):
			return errorf(errInvalidAttrName, "%s cannot be set", k)
		default:
			sa, ok := storedAttrs[k]
			if !ok {
				return errorf(errInvalidAttrName, "unknown attribute %s", k)
			}
			if err := sa.check(v); err != nil {
				return errorf(errInvalidAttrValue, "%s: %s", k, err.(*apiError).msg)
			}
		}
	}
	return nil
}

// checkRedriveTarget checks that the dead-letter queue of a RedrivePolicy, if any, exists.
func (h *Handler) checkRedriveTarget(ctx context.Context, attrs map[string]string) error {
	dl, _, err := parseRedrive(attrs["RedrivePolicy"])
	if err != nil || dl == "" {
		return err
	}
	if _, err := h.eng.QueueConfig(ctx, dl); err != nil {
		if errors.Is(err, engine.ErrQueueNotFound) {
			return errorf(errInvalidAttrValue, "RedrivePolicy: the dead-letter target %s does not exist", dl)
		}
		return err
	}
	return nil
}

// parseRedrive reads a RedrivePolicy: its dead-letter queue and maxReceiveCount ("": none).
func parseRedrive(v string) (string, int, error) {
	if v == "" {
		return "", 0, nil
	}
	var p struct {
		Target string          `json:"deadLetterTargetArn"`
		Count  json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return "", 0, errorf(errInvalidAttrValue, "RedrivePolicy: %v", err)
	}
	dl, err := arnQueue(p.Target)
	if err != nil {
		return "", 0, errorf(errInvalidAttrValue, "RedrivePolicy: deadLetterTargetArn: %s", err.(*apiError).msg)
	}
	n, err := strconv.Atoi(strings.Trim(string(p.Count), `"`))
	if err != nil || n < 1 || n > engine.MaxMaxAttempts {
		return "", 0, errorf(errInvalidAttrValue, "RedrivePolicy: maxReceiveCount must be from 1 to %d", engine.MaxMaxAttempts)
	}
	return dl, n, nil
}

// setAttributes applies checked attributes (and extra engine attributes) to queue name.
func (h *Handler) setAttributes(ctx context.Context, name string, attrs map[string]string, extra map[string]string) error {
	set := maps.Clone(extra)
	if set == nil {
		set = map[string]string{}
	}
	var remove []string
	var s engine.QueueSettings
	redrive, hasRedrive := attrs["RedrivePolicy"]
	for k, v := range attrs {
		switch {
		case k == "VisibilityTimeout":
			n, _ := strconv.Atoi(v)
			s.Lease = time.Duration(n) * time.Second
		case k == "RedrivePolicy" || k == "FifoQueue":
		case storedAttrs[k].def == v:
			remove = append(remove, attrPrefix+k)
		default:
			set[attrPrefix+k] = v
		}
	}
	if hasRedrive {
		dl, n, _ := parseRedrive(redrive)
		if _, err := h.eng.SetDeadLetter(ctx, name, dl); err != nil {
			return err
		}
		s.MaxAttempts = cmpInt(n, noRedriveAttempts)
	}
	if s != (engine.QueueSettings{}) {
		if _, err := h.eng.PutQueue(ctx, name, s); err != nil {
			return err
		}
	}
	if len(attrs) > 0 {
		set[attrPrefix+"LastModifiedTimestamp"] = strconv.FormatInt(h.opt.Now().Unix(), 10)
	}
	if len(set) > 0 || len(remove) > 0 {
		if _, err := h.eng.SetQueueAttributes(ctx, name, set, remove); err != nil {
			return err
		}
	}
	return nil
}

func cmpInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (h *Handler) setQueueAttributes(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(req.Attributes) == 0 {
		return nil, errorf(errMissingParam, "the request must contain the parameter Attributes")
	}
	if err := h.checkAttributes(req.Attributes); err != nil {
		return nil, err
	}
	if err := h.checkRedriveTarget(ctx, req.Attributes); err != nil {
		return nil, err
	}
	return empty{}, h.setAttributes(ctx, qi.Name, req.Attributes, nil)
}

func (h *Handler) listDeadLetterSourceQueues(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	names, next, err := page(req, h.eng.DeadLetterSources(qi.Name))
	if err != nil {
		return nil, err
	}
	out := struct {
		QueueUrls []string `json:"queueUrls"`
		NextToken string   `json:"NextToken,omitempty"`
	}{QueueUrls: []string{}, NextToken: next}
	for _, n := range names {
		out.QueueUrls = append(out.QueueUrls, h.queueURL(req.host, n))
	}
	return out, nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return errorf(errInvalidParam, "a queue has at most %d tags", maxTags)
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || len(v) > 256 {
			return errorf(errInvalidParam, "tag keys are 1 to 128 characters, values up to 256")
		}
	}
	return nil
}

func (h *Handler) tagQueue(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(req.TagsUpper) == 0 {
		return nil, errorf(errMissingParam, "the request must contain the parameter Tags")
	}
	if err := checkTags(req.TagsUpper); err != nil {
		return nil, err
	}
	n := len(req.TagsUpper)
	for k := range qi.Attributes {
		if t, ok := strings.CutPrefix(k, tagPrefix); ok {
			if _, again := req.TagsUpper[t]; !again {
				n++
			}
		}
	}
	if n > maxTags {
		return nil, errorf(errInvalidParam, "a queue has at most %d tags", maxTags)
	}
	set := map[string]string{}
	for k, v := range req.TagsUpper {
		set[tagPrefix+k] = v
	}
	_, err = h.eng.SetQueueAttributes(ctx, qi.Name, set, nil)
	return empty{}, err
}

func (h *Handler) untagQueue(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(req.TagKeys) == 0 {
		return nil, errorf(errMissingParam, "the request must contain the parameter TagKeys")
	}
	var remove []string
	for _, k := range req.TagKeys {
		remove = append(remove, tagPrefix+k)
	}
	_, err = h.eng.SetQueueAttributes(ctx, qi.Name, nil, remove)
	return empty{}, err
}

func (h *Handler) listQueueTags(ctx context.Context, req *request) (any, error) {
	qi, err := h.queue(ctx, req)
	if err != nil {
		return nil, err
	}
	out := struct {
		Tags map[string]string `json:"Tags,omitempty"`
	}{Tags: map[string]string{}}
	for k, v := range qi.Attributes {
		if t, ok := strings.CutPrefix(k, tagPrefix); ok {
			out.Tags[t] = v
		}
	}
	return out, nil
}
