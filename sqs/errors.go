package sqs

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spoolq/spool/engine"
)

// errCode is one AWS error: its code in the JSON protocol (__type), its code in the query
// protocol (and the x-amzn-query-error header), its HTTP status and fault.
type errCode struct {
	json, query string
	status      int
	sender      bool
}

var (
	errQueueNotFound     = errCode{"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400, true}
	errQueueExists       = errCode{"QueueNameExists", "QueueAlreadyExists", 400, true}
	errReceiptInvalid    = errCode{"ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 400, true}
	errNotInflight       = errCode{"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400, true}
	errInvalidParam      = errCode{"InvalidParameterValue", "InvalidParameterValue", 400, true}
	errMissingParam      = errCode{"MissingParameter", "MissingParameter", 400, true}
	errInvalidAttrName   = errCode{"InvalidAttributeName", "InvalidAttributeName", 400, true}
	errInvalidAttrValue  = errCode{"InvalidAttributeValue", "InvalidAttributeValue", 400, true}
	errInvalidContents   = errCode{"InvalidMessageContents", "InvalidMessageContents", 400, true}
	errIDsNotDistinct    = errCode{"BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, true}
	errTooManyEntries    = errCode{"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, true}
	errEmptyBatch        = errCode{"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400, true}
	errInvalidBatchID    = errCode{"InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400, true}
	errBatchTooLong      = errCode{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400, true}
	errUnsupported       = errCode{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400, true}
	errInvalidAction     = errCode{"InvalidAction", "InvalidAction", 400, true}
	errResourceNotFound  = errCode{"ResourceNotFoundException", "ResourceNotFoundException", 400, true}
	errInvalidSecurity   = errCode{"InvalidSecurity", "AWS.SimpleQueueService.InvalidSecurity", 403, true}
	errMissingAuth       = errCode{"MissingAuthenticationToken", "MissingAuthenticationToken", 403, true}
	errInvalidClientID   = errCode{"InvalidClientTokenId", "InvalidClientTokenId", 403, true}
	errSignatureMismatch = errCode{"SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, true}
	errRequestExpired    = errCode{"RequestExpired", "RequestExpired", 400, true}
	errTooLarge          = errCode{"RequestEntityTooLarge", "RequestEntityTooLarge", 413, true}
	errUnavailable       = errCode{"ServiceUnavailable", "ServiceUnavailable", 503, false}
	errInternal          = errCode{"InternalError", "InternalError", 500, false}
)

// apiError is an error answered to the client.
type apiError struct {
	errCode
	msg string
}

func (e *apiError) Error() string { return e.json + ": " + e.msg }

func errorf(c errCode, format string, args ...any) error {
	return &apiError{c, fmt.Sprintf(format, args...)}
}

// asAPIError maps any error to the one answered: engine errors to their AWS codes, a
// transient engine failure to a retryable 503.
func asAPIError(err error) *apiError {
	var ae *apiError
	var ve *engine.ValidationError
	var pe *engine.PayloadTooLargeError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, engine.ErrQueueNotFound):
		return &apiError{errQueueNotFound, "The specified queue does not exist."}
	case errors.As(err, &ve):
		return &apiError{errInvalidParam, ve.Error()}
	case errors.As(err, &pe):
		return &apiError{errInvalidParam, pe.Error()}
	case engine.Transient(err), errors.Is(err, engine.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		return &apiError{errUnavailable, "spool is temporarily unavailable: " + err.Error()}
	}
	return &apiError{errInternal, err.Error()}
}

// batchError is the Failed entry of a batch answer for err.
func batchError(id string, err error) batchResultError {
	e := asAPIError(err)
	return batchResultError{ID: id, Code: e.json, Message: e.msg, SenderFault: e.sender}
}

func (e *apiError) fault() string {
	if e.sender {
		return "Sender"
	}
	return "Receiver"
}

func (h *Handler) writeErr(w http.ResponseWriter, p protocol, err error) {
	e := asAPIError(err)
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if p == nil {
		p = jsonProtocol{}
	}
	p.writeError(w, e)
}
