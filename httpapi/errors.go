package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/spoolq/spool/engine"
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
	)
	switch {
	case errors.As(err, &ae):
		return ae.Status, errorOut{ae.Code, ae.Message, ae.Field}
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
	writeJSON(w, status, errorBody{out})
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
		return nil
	}
	if err == nil {
		if err = dec.Decode(new(json.RawMessage)); errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "body holds more than one JSON value"}
		}
	}
	return decodeErr(err)
}

func decodeErr(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
			Message: fmt.Sprintf("request body over %d bytes", mbe.Limit)}
	case errors.As(err, &se):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.As(err, &te):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Field: te.Field,
			Message: fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: "truncated JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Field: f, Message: fmt.Sprintf("unknown field %q", f)}
	default:
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_json", Message: err.Error()}
	}
}
