package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/spoolq/spool/engine"
	"github.com/spoolq/spool/internal/budget"
)

// apiError is an error with its HTTP status and stable code.
type apiError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *apiError) Error() string { return e.Message }

func fieldErr(field, msg string) error {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_argument", Message: field + ": " + msg, Field: field}
}

// prefixField puts a batch item's position in front of a field error's field.
func prefixField(err error, prefix string) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Field != "" {
		return &apiError{Status: ae.Status, Code: ae.Code, Message: prefix + ae.Message, Field: prefix + ae.Field}
	}
	return err
}

type errorOut struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

type errorBody struct {
	Error errorOut `json:"error"`
}

// classify maps an error to its status and wire form.
func (h *Handler) classify(err error) (int, errorOut) {
	var (
		ae *apiError
		ve *engine.ValidationError
		pe *engine.PayloadTooLargeError
		ru *engine.ReplicasUnavailableError
		rc *engine.ReplicasConflictError
	)
	switch {
	case errors.As(err, &ae):
		return ae.Status, errorOut{ae.Code, ae.Message, ae.Field}
	case errors.As(err, &ru):
		return http.StatusBadRequest, errorOut{"replicas_unavailable", ru.Error(), "replicas"}
	case errors.As(err, &rc):
		return http.StatusConflict, errorOut{"replicas_conflict", rc.Error(), "replicas"}
	case errors.As(err, &ve):
		return http.StatusBadRequest, errorOut{"invalid_argument", ve.Error(), ve.Field}
	case errors.As(err, &pe):
		return http.StatusRequestEntityTooLarge, errorOut{Code: "payload_too_large", Message: pe.Error()}
	case errors.Is(err, engine.ErrJobNotFound):
		return http.StatusNotFound, errorOut{Code: "job_not_found", Message: err.Error()}
	case errors.Is(err, engine.ErrQueueNotFound):
		return http.StatusNotFound, errorOut{Code: "queue_not_found", Message: err.Error()}
	case errors.Is(err, engine.ErrLeaseLost):
		return http.StatusConflict, errorOut{Code: "lease_lost", Message: err.Error()}
	case errors.Is(err, engine.ErrWrongState):
		return http.StatusConflict, errorOut{Code: "wrong_state", Message: err.Error()}
	case errors.Is(err, engine.ErrClosed), ctxErr(err):
		return http.StatusServiceUnavailable, errorOut{Code: "unavailable", Message: "server shutting down or request cancelled"}
	case engine.Transient(err):
		return http.StatusServiceUnavailable, errorOut{Code: "unavailable", Message: "storage unavailable, try again: " + err.Error()}
	default:
		h.log.Error("internal error", "err", err)
		return http.StatusInternalServerError, errorOut{Code: "internal", Message: "internal error; see the server log"}
	}
}

func (h *Handler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, out := h.classify(err)
	if status >= 500 {
		h.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	h.logRefusal(r, status)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, errorBody{out})
}

// ConnRefusal is the answer to a connection over the server's cap (see connlimit): a 503
// too_many_connections, sent once the request starts to arrive, and the connection closes.
func ConnRefusal(max int) []byte {
	body, _ := json.Marshal(errorBody{errorOut{Code: "too_many_connections",
		Message: fmt.Sprintf("the server holds its maximum of %d connections (--http-max-conns); try again", max)}})
	body = append(body, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"+
		"Connection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// decode reads a JSON body strictly: known fields only, one value, within limit bytes.
// An empty body decodes as {}.
func decode(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: fmt.Sprintf("Content-Type %q: send application/json", ct)}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		bodyRead(w)
		return nil
	}
	if err == nil {
		if err = dec.Decode(new(json.RawMessage)); errors.Is(err, io.EOF) {
			bodyRead(w)
			return nil
		}
		if err == nil {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "body holds more than one JSON value"}
		}
	}
	return decodeErr(err)
}

// bodyRead lifts the server's read deadline (ReadTimeout) once the whole body is in: that
// deadline bounds a slow client's request, not the handling of it. net/http reads on in the
// background meanwhile and cancels the request when that read times out.
func bodyRead(w http.ResponseWriter) {
	http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// decodeStrict decodes one JSON value as decode does, from bytes already read.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeErr(err)
	}
	return nil
}

func decodeErr(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, budget.ErrExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "overloaded",
			Message: "the server holds its budget of request bytes in flight (--max-inflight); try again"}
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
			Message: fmt.Sprintf("request body over %d bytes", mbe.Limit)}
	case errors.As(err, &se):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.As(err, &te) && te.Field == "":
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body must be a JSON object, got JSON " + te.Value}
	case errors.As(err, &te):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Field: te.Field,
			Message: fmt.Sprintf("%s: want %s, got JSON %s", te.Field, jsonType(te.Type.Kind()), te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "truncated JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Field: f, Message: f + ": unknown field"}
	default:
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error()}
	}
}

// jsonType names a Go kind as the JSON type that decodes into it.
func jsonType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another type"
}

// batchOutcome is the answer's status of a batch whose items succeed or fail one by one.
// Items refused for what they are (a lost lease, a wrong state) leave it 200; an item that
// failed for the server's sake (storage unavailable: a leader election in a cluster) makes
// the whole answer that 5xx, so that a client looking only at the status cannot take the
// batch for stored. The body still lists every item: the ones without an error were
// stored, and only the others should be sent again.
type batchOutcome struct {
	status int
	err    errorOut
	failed int
}

// add classifies an item's error and returns its wire form.
func (b *batchOutcome) add(h *Handler, err error) *errorOut {
	status, e := h.classify(err)
	if status >= 500 {
		b.failed++
		if b.status == 0 || status == http.StatusInternalServerError {
			// 500 (internal) outranks 503 (try again): trying again will not fix it.
			b.status, b.err = status, e
		}
	}
	return &e
}

// write answers the batch: 200, or the worst item's 5xx with an error beside the items.
func (b *batchOutcome) write(w http.ResponseWriter, key string, items any, n int) {
	if b.status == 0 {
		writeJSON(w, http.StatusOK, map[string]any{key: items})
		return
	}
	if b.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	e := b.err
	e.Message = fmt.Sprintf("%d of %d items failed (%s); the items without an error were stored: send only the others again", b.failed, n, e.Message)
	writeJSON(w, b.status, map[string]any{"error": e, key: items})
}
