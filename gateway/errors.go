package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/tandem-chat/tandem"
)

// HTTPStatus maps an error code to its HTTP status. It is the single place
// where Tandem's error codes meet HTTP.
func HTTPStatus(code string) int {
	switch code {
	case tandem.EINVALID:
		return http.StatusBadRequest
	case tandem.ENOTFOUND:
		return http.StatusNotFound
	case tandem.ECONFLICT:
		return http.StatusConflict
	case tandem.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case tandem.EFORBIDDEN:
		return http.StatusForbidden
	case tandem.EOVERLOADED:
		return http.StatusTooManyRequests
	case tandem.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// WSCloseCode maps an error code to a WebSocket close code (4000-4999 are
// application codes; 1008 policy violation, 1011 internal error, 1013 try
// again later).
func WSCloseCode(code string) int {
	switch code {
	case tandem.EINVALID:
		return 4400
	case tandem.EUNAUTHORIZED:
		return 4401
	case tandem.EFORBIDDEN:
		return 4403
	case tandem.ENOTFOUND:
		return 4404
	case tandem.ECONFLICT:
		return 4409
	case tandem.EOVERLOADED:
		return 4429
	case tandem.EUNAVAILABLE:
		return 1013
	default:
		return 1011
	}
}

// ErrorBody is the JSON shape of every error response:
// {"error": {"code": "...", "message": "..."}}.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError writes err as a JSON error response. Internal errors are logged
// with their cause and shown to the client only as "internal error".
func WriteError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	var tl TooLargeError
	if errors.As(err, &tl) {
		var body ErrorBody
		body.Error.Code, body.Error.Message = tandem.EINVALID, tl.Error()
		WriteJSON(w, http.StatusRequestEntityTooLarge, body)
		return
	}
	code := tandem.ErrorCode(err)
	msg := tandem.ErrorMessage(err)
	var ne net.Error
	if code == tandem.EINTERNAL && errors.As(err, &ne) {
		// A store or service that cannot be reached (the database is
		// down): 503, which clients retry, not 500. Logged all the same.
		code, msg = tandem.EUNAVAILABLE, "temporarily unavailable; retry shortly"
		if logger != nil {
			logger.ErrorContext(r.Context(), "a backing service is unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	if code == tandem.EINTERNAL && logger != nil {
		logger.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var body ErrorBody
	body.Error.Code = code
	body.Error.Message = msg
	WriteJSON(w, HTTPStatus(code), body)
}

// WriteJSON writes v as JSON with the status. v is encoded before anything
// is written: a value that cannot be encoded (a NaN, say) is answered with
// 500 internal, never with the status and an empty or truncated body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// TooLargeError is a request body over its limit; WriteError answers it
// with 413 and the code "invalid".
type TooLargeError struct{ Limit int64 }

func (e TooLargeError) Error() string {
	if e.Limit >= 1<<20 {
		return fmt.Sprintf("request body larger than %d bytes (%d MiB)", e.Limit, e.Limit>>20)
	}
	return fmt.Sprintf("request body larger than %d bytes", e.Limit)
}

// SetAllow sets the Allow header of a 405 answer to the methods routes has
// for the request's path (HTTP requires it; chi's own 405 handler sets it,
// a custom one replaces that). Mounted routers match the path left after
// their prefix.
func SetAllow(w http.ResponseWriter, r *http.Request, routes chi.Routes) {
	path := r.URL.Path
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePath != "" {
		path = rctx.RoutePath
	}
	for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPost, http.MethodPut} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			w.Header().Add("Allow", m)
		}
	}
}
