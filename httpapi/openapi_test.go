package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file checks httpapi/openapi.yaml against the code: the document's routes are exactly
// the Handler's, its internal references resolve, its examples fit its schemas, and (used by
// httpapi_test.go) every answer the real server gives in the tests fits the document.

// apiDoc is openapi.yaml, parsed and normalised to JSON values (map[string]any, []any,
// string, bool, nil and json.Number), so that documents and answers compare alike.
type apiDoc struct {
	raw  []byte
	root map[string]any
	re   sync.Map // pattern -> *regexp.Regexp
}

var (
	docOnce sync.Once
	theDoc  *apiDoc
	docErr  error
)

// loadDoc parses openapi.yaml once per test binary.
func loadDoc(tb testing.TB) *apiDoc {
	tb.Helper()
	docOnce.Do(func() {
		raw, err := os.ReadFile("openapi.yaml")
		if err != nil {
			docErr = err
			return
		}
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			docErr = fmt.Errorf("openapi.yaml: %w", err)
			return
		}
		root, ok := normalize(v).(map[string]any)
		if !ok {
			docErr = fmt.Errorf("openapi.yaml: not a mapping")
			return
		}
		theDoc = &apiDoc{raw: raw, root: root}
	})
	if docErr != nil {
		tb.Fatal(docErr)
	}
	return theDoc
}

// normalize turns YAML-decoded values into JSON-decoded ones (numbers as json.Number).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int:
		return json.Number(strconv.Itoa(x))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case uint64:
		return json.Number(strconv.FormatUint(x, 10))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	case time.Time:
		return x.Format(time.RFC3339Nano)
	default:
		return v
	}
}

// decodeJSON decodes a JSON document with numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

func (d *apiDoc) paths() map[string]any { return asMap(d.root["paths"]) }

// routes lists the document's operations as mux patterns, "POST /v1/queues/{queue}/jobs".
func (d *apiDoc) routes() []string {
	var out []string
	for p, item := range d.paths() {
		for _, m := range httpMethods {
			if _, ok := asMap(item)[m]; ok {
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// resolve follows a local $ref ("#/components/schemas/Job") to its target.
func (d *apiDoc) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var cur any = d.root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m := asMap(cur)
		if m == nil {
			return nil, fmt.Errorf("$ref %q: %q is not in a mapping", ref, tok)
		}
		next, ok := m[tok]
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve (%q missing)", ref, tok)
		}
		cur = next
	}
	return cur, nil
}

// deref resolves v when it is a {$ref: ...} object (responses, parameters).
func (d *apiDoc) deref(v any) map[string]any {
	m := asMap(v)
	for i := 0; m != nil && i < 10; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		t, err := d.resolve(ref)
		if err != nil {
			return nil
		}
		m = asMap(t)
	}
	return m
}

// match finds the document path that a request path (escaped, without query) falls under.
// A {param} matches one non-empty segment; the path with the most literal segments wins.
func (d *apiDoc) match(escapedPath string) (string, bool) {
	segs := strings.Split(escapedPath, "/")
	best, bestLit := "", -1
	for p := range d.paths() {
		ts := strings.Split(p, "/")
		if len(ts) != len(segs) {
			continue
		}
		lit, ok := 0, true
		for i, t := range ts {
			switch {
			case strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}"):
				ok = ok && segs[i] != ""
			case t == segs[i]:
				lit++
			default:
				ok = false
			}
		}
		if ok && lit > bestLit {
			best, bestLit = p, lit
		}
	}
	return best, bestLit >= 0
}

// checkAnswer checks one answer of the server against the document: the route and status are
// documented for the operation, the media type is one of the documented ones, and a JSON body
// fits the schema. It returns the problems found.
func (d *apiDoc) checkAnswer(method, escapedPath string, status int, header http.Header, body []byte) []string {
	var probs []string
	errSchema := map[string]any{"$ref": "#/components/schemas/Error"}
	route, ok := d.match(escapedPath)
	var op map[string]any
	if ok {
		lm := strings.ToLower(method)
		if lm == "head" {
			lm = "get"
		}
		op = asMap(asMap(d.paths()[route])[lm])
	}
	if op == nil {
		// Not an operation of the document: the router's own 404 not_found / 405 method_not_allowed.
		want := "not_found"
		if status == http.StatusMethodNotAllowed {
			want = "method_not_allowed"
		}
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return []string{fmt.Sprintf("%s %s is no documented operation, yet answered %d", method, escapedPath, status)}
		}
		v, err := decodeJSON(body)
		if err != nil {
			return []string{fmt.Sprintf("%d answer is not JSON: %v: %q", status, err, body)}
		}
		probs = append(probs, d.validate(errSchema, v, "body")...)
		if c := errorCode(v); c != want {
			probs = append(probs, fmt.Sprintf("%d answer has code %q, want %q", status, c, want))
		}
		return probs
	}
	resps := asMap(op["responses"])
	resp := d.deref(resps[strconv.Itoa(status)])
	if resp == nil {
		resp = d.deref(resps["default"])
	}
	if resp == nil {
		return []string{fmt.Sprintf("%s %s: status %d is not documented for the operation", method, route, status)}
	}
	content := asMap(resp["content"])
	if method == http.MethodHead {
		return nil
	}
	if len(content) == 0 {
		if len(body) != 0 {
			probs = append(probs, fmt.Sprintf("%s %s %d: documented without content, got %q", method, route, status, body))
		}
		return probs
	}
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		return []string{fmt.Sprintf("%s %s %d: Content-Type %q: %v", method, route, status, header.Get("Content-Type"), err)}
	}
	media := asMap(content[mt])
	if media == nil {
		return []string{fmt.Sprintf("%s %s %d: Content-Type %q not documented", method, route, status, mt)}
	}
	if mt != "application/json" {
		return nil
	}
	v, err := decodeJSON(body)
	if err != nil {
		return []string{fmt.Sprintf("%s %s %d: body is not JSON: %v: %q", method, route, status, err, body)}
	}
	for _, p := range d.validate(media["schema"], v, "body") {
		probs = append(probs, fmt.Sprintf("%s %s %d: %s", method, route, status, p))
	}
	return probs
}

func errorCode(v any) string {
	c, _ := asMap(asMap(v)["error"])["code"].(string)
	return c
}

// validate checks val against a JSON Schema (the subset openapi.yaml uses: $ref, allOf,
// oneOf, anyOf, type, enum, const, properties, required, additionalProperties, items,
// minItems, maxItems, minimum, maximum, minLength, maxLength, pattern, maxProperties,
// propertyNames and format date-time). Other keywords are annotations.
func (d *apiDoc) validate(schema, val any, at string) []string {
	if b, ok := schema.(bool); ok {
		if !b {
			return []string{at + ": not allowed"}
		}
		return nil
	}
	s := asMap(schema)
	if s == nil {
		return []string{fmt.Sprintf("%s: schema is not an object: %v", at, schema)}
	}
	var probs []string
	fail := func(format string, args ...any) { probs = append(probs, at+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := s["$ref"].(string); ok {
		t, err := d.resolve(ref)
		if err != nil {
			fail("%v", err)
		} else {
			probs = append(probs, d.validate(t, val, at)...)
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			probs = append(probs, d.validate(sub, val, at)...)
		}
	}
	if any_, ok := s["anyOf"].([]any); ok {
		okN := 0
		for _, sub := range any_ {
			if len(d.validate(sub, val, at)) == 0 {
				okN++
			}
		}
		if okN == 0 {
			fail("matches none of anyOf")
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		okN := 0
		var why []string
		for _, sub := range one {
			p := d.validate(sub, val, at)
			if len(p) == 0 {
				okN++
			}
			why = append(why, p...)
		}
		if okN != 1 {
			fail("matches %d of oneOf, want 1 (%s)", okN, strings.Join(why, "; "))
		}
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, val) {
		fail("%v is not the constant %v", val, c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, val) }) {
		fail("%v is not one of %v", val, e)
	}
	if t, ok := s["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				types = append(types, fmt.Sprint(e))
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(val, t) }) {
			fail("%s is not of type %v", jsonKind(val), types)
			return probs
		}
	}
	switch x := val.(type) {
	case string:
		n := json.Number(strconv.Itoa(len([]rune(x))))
		if m, ok := s["minLength"].(json.Number); ok && cmpNum(n, m) < 0 {
			fail("%q shorter than %s", x, m)
		}
		if m, ok := s["maxLength"].(json.Number); ok && cmpNum(n, m) > 0 {
			fail("string of %s characters is longer than %s", n, m)
		}
		if p, ok := s["pattern"].(string); ok {
			re, err := d.regexp(p)
			if err != nil {
				fail("pattern %q: %v", p, err)
			} else if !re.MatchString(x) {
				fail("%q does not match %q", x, p)
			}
		}
		if f, _ := s["format"].(string); f == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				fail("%q is not an RFC 3339 date-time", x)
			}
		}
	case json.Number:
		if m, ok := s["minimum"].(json.Number); ok && cmpNum(x, m) < 0 {
			fail("%s is below the minimum %s", x, m)
		}
		if m, ok := s["maximum"].(json.Number); ok && cmpNum(x, m) > 0 {
			fail("%s is above the maximum %s", x, m)
		}
	case map[string]any:
		props := asMap(s["properties"])
		for _, r := range asSlice(s["required"]) {
			if _, ok := x[fmt.Sprint(r)]; !ok {
				fail("required property %q is missing", r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k]; ok {
				probs = append(probs, d.validate(ps, x[k], at+"."+k)...)
				continue
			}
			if ap, ok := s["additionalProperties"]; ok {
				if b, isBool := ap.(bool); isBool && !b {
					fail("property %q is not documented", k)
				} else if !isBool {
					probs = append(probs, d.validate(ap, x[k], at+"."+k)...)
				}
			}
			if pn, ok := s["propertyNames"]; ok {
				probs = append(probs, d.validate(pn, k, at+" key "+strconv.Quote(k))...)
			}
		}
		if m, ok := s["maxProperties"].(json.Number); ok && cmpNum(json.Number(strconv.Itoa(len(x))), m) > 0 {
			fail("more than %s properties", m)
		}
	case []any:
		if m, ok := s["minItems"].(json.Number); ok && cmpNum(json.Number(strconv.Itoa(len(x))), m) < 0 {
			fail("fewer than %s items", m)
		}
		if m, ok := s["maxItems"].(json.Number); ok && cmpNum(json.Number(strconv.Itoa(len(x))), m) > 0 {
			fail("more than %s items", m)
		}
		if it, ok := s["items"]; ok {
			for i, e := range x {
				probs = append(probs, d.validate(it, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return probs
}

func (d *apiDoc) regexp(p string) (*regexp.Regexp, error) {
	if re, ok := d.re.Load(p); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	d.re.Store(p, re)
	return re, nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if hasType(x, "integer") {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func hasType(v any, t string) bool {
	switch t {
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		r, ok := new(big.Rat).SetString(string(n))
		return ok && r.IsInt()
	case "number":
		_, ok := v.(json.Number)
		return ok
	}
	return jsonKind(v) == t
}

func cmpNum(a, b json.Number) int {
	x, ok1 := new(big.Rat).SetString(string(a))
	y, ok2 := new(big.Rat).SetString(string(b))
	if !ok1 || !ok2 {
		panic(fmt.Sprintf("not numbers: %q %q", a, b))
	}
	return x.Cmp(y)
}

// sourceRoutes reads the mux patterns registered in Handler.routes from the package source:
// every call there whose first argument is a string literal "METHOD /path".
func sourceRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	pat := regexp.MustCompile(`^[A-Z]+ /\S*$`)
	fset := token.NewFileSet()
	var out []string
	found := false
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range af.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Name.Name != "routes" || fd.Recv == nil {
				continue
			}
			found = true
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && pat.MatchString(s) {
					out = append(out, s)
				}
				return true
			})
		}
	}
	if !found || len(out) == 0 {
		t.Fatal("found no route patterns in Handler.routes: the way routes are registered changed; update sourceRoutes")
	}
	sort.Strings(out)
	return out
}

// probePath fills a route's path parameters with values that are well-formed.
func probePath(route string) string {
	return strings.NewReplacer("{queue}", "probe-queue", "{id}", "1").Replace(route)
}

// routeLevel reports whether an answer is the router's own (no such route, or wrong method),
// as opposed to an answer of a route's handler.
func routeLevel(rec *httptest.ResponseRecorder) bool {
	if rec.Code == http.StatusMethodNotAllowed {
		return true
	}
	v, _ := decodeJSON(rec.Body.Bytes())
	return rec.Code == http.StatusNotFound && errorCode(v) == "not_found"
}

// TestOpenAPIRoutesMatchHandler checks that the document has exactly the Handler's routes:
// the patterns registered in routes() (read from the source), each of which the Handler
// serves, and for every documented path the methods that the Handler allows.
func TestOpenAPIRoutesMatchHandler(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	docRoutes := doc.routes()
	srcRoutes := sourceRoutes(t)
	for _, r := range srcRoutes {
		if !slices.Contains(docRoutes, r) {
			t.Errorf("route %q is served but not in openapi.yaml", r)
		}
	}
	for _, r := range docRoutes {
		if !slices.Contains(srcRoutes, r) {
			t.Errorf("operation %q is in openapi.yaml but not registered in routes()", r)
		}
	}

	s := newServer(t, 0)
	serve := func(method, path string) *httptest.ResponseRecorder {
		// A body of the wrong media type: routes that read a body stop at 415 before acting.
		req := httptest.NewRequest(method, path, strings.NewReader("probe"))
		req.Header.Set("Content-Type", "text/plain")
		// A feed (GET /v1/events) answers until its client leaves: this one leaves soon.
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		return rec
	}
	// The probe tells routes from non-routes: a control that must fail.
	if rec := serve("GET", "/v1/no-such-route"); !routeLevel(rec) {
		t.Fatalf("probe of an unknown route answered %d %s; the probe cannot tell routes apart", rec.Code, rec.Body)
	}
	if rec := serve("PATCH", "/v1/stats"); !routeLevel(rec) {
		t.Fatalf("probe with a wrong method answered %d %s; the probe cannot tell routes apart", rec.Code, rec.Body)
	}
	for _, r := range docRoutes {
		method, path, _ := strings.Cut(r, " ")
		if rec := serve(method, probePath(path)); routeLevel(rec) {
			t.Errorf("documented %s: the Handler has no such route (%d %s)", r, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
	// The methods the Handler allows on each documented path, from the Allow header of a 405.
	for p, item := range doc.paths() {
		var want []string
		for _, m := range httpMethods {
			if _, ok := asMap(item)[m]; ok {
				want = append(want, strings.ToUpper(m))
			}
		}
		rec := serve("PROPFIND", probePath(p))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("PROPFIND %s: %d, want 405", p, rec.Code)
			continue
		}
		var got []string
		for _, m := range strings.Split(rec.Header().Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != "" && m != "HEAD" { // HEAD comes with every GET
				got = append(got, m)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the Handler allows %v, openapi.yaml documents %v", p, got, want)
		}
	}
}

// TestOpenAPIServed checks that the embedded document is the file and is served as YAML.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	s := newServer(t, 0)
	r := s.do(t, "GET", "/v1/openapi.yaml", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.raw, doc.raw) {
		t.Fatalf("GET /v1/openapi.yaml: %d, %d bytes; want 200 and the %d bytes of openapi.yaml", r.status, len(r.raw), len(doc.raw))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
}

// The error codes of docs/http-api.md, by status.
var codesByStatus = map[int][]string{
	400: {"invalid_json", "invalid_argument", "replicas_unavailable"},
	401: {"unauthenticated"},
	403: {"forbidden"},
	404: {"job_not_found", "queue_not_found", "schedule_not_found", "token_not_found", "webhook_not_found", "not_found"},
	405: {"method_not_allowed"},
	409: {"lease_lost", "wrong_state", "replicas_conflict"},
	413: {"payload_too_large"},
	415: {"unsupported_media_type"},
	500: {"internal"},
	503: {"unavailable", "overloaded", "too_many_connections"},
}

// TestOpenAPIDocument checks the document itself: version, references, operations,
// parameters, error responses and that every example fits its schema.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	if v := doc.root["openapi"]; v != "3.1.0" {
		t.Errorf("openapi: %v, want 3.1.0", v)
	}

	// Every $ref resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if _, err := doc.resolve(ref); err != nil {
					t.Errorf("%s: %v", at, err)
				}
			}
			for k, e := range x {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(doc.root, "#")

	allCodes := []string{}
	for _, cs := range codesByStatus {
		allCodes = append(allCodes, cs...)
	}
	ids := map[string]string{}
	paramRe := regexp.MustCompile(`\{([^}]+)\}`)
	for p, itemV := range doc.paths() {
		item := asMap(itemV)
		for _, m := range httpMethods {
			op := asMap(item[m])
			if op == nil {
				continue
			}
			name := strings.ToUpper(m) + " " + p
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", name)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q already used by %s", name, id, prev)
			}
			ids[id] = name

			// Path parameters: declared exactly for the template's {names}.
			declared := map[string]bool{}
			for _, pv := range append(asSlice(item["parameters"]), asSlice(op["parameters"])...) {
				prm := doc.deref(pv)
				if prm["in"] == "path" {
					declared[fmt.Sprint(prm["name"])] = true
					if prm["required"] != true {
						t.Errorf("%s: path parameter %v not required", name, prm["name"])
					}
				}
			}
			for _, sm := range paramRe.FindAllStringSubmatch(p, -1) {
				if !declared[sm[1]] {
					t.Errorf("%s: path parameter {%s} not declared", name, sm[1])
				}
				delete(declared, sm[1])
			}
			for n := range declared {
				t.Errorf("%s: declares path parameter %q that is not in the path", name, n)
			}

			resps := asMap(op["responses"])
			if len(resps) == 0 {
				t.Errorf("%s: no responses", name)
			}
			for code, rv := range resps {
				resp := doc.deref(rv)
				if resp == nil {
					t.Errorf("%s %s: response does not resolve", name, code)
					continue
				}
				st, _ := strconv.Atoi(code)
				checkExamples(t, doc, fmt.Sprintf("%s %s", name, code), asMap(resp["content"]))
				if st < 400 || id == "healthz" { // /healthz answers 503 with its own status object
					continue
				}
				// An error response must admit some codes, and only those of its status.
				want := codesByStatus[st]
				if want == nil {
					t.Errorf("%s: status %d is no error status of docs/http-api.md", name, st)
					continue
				}
				schema := asMap(asMap(resp["content"])["application/json"])["schema"]
				var admitted []string
				for _, c := range allCodes {
					body := map[string]any{"error": map[string]any{"code": c, "message": "m"}}
					if len(doc.validate(schema, body, "body")) == 0 {
						admitted = append(admitted, c)
					}
				}
				if len(admitted) == 0 {
					t.Errorf("%s %d: the schema admits no error code", name, st)
				}
				for _, c := range admitted {
					if !slices.Contains(want, c) {
						t.Errorf("%s %d: the schema admits code %q, which docs/http-api.md gives status %v", name, st, c, statusOf(c))
					}
				}
			}
			if rb := doc.deref(op["requestBody"]); rb != nil {
				checkExamples(t, doc, name+" request", asMap(rb["content"]))
			}
		}
	}
	for name, s := range asMap(asMap(doc.root["components"])["schemas"]) {
		if ex, ok := asMap(s)["example"]; ok {
			for _, p := range doc.validate(s, ex, "example") {
				t.Errorf("schema %s: %s", name, p)
			}
		}
	}
}

func statusOf(code string) int {
	for st, cs := range codesByStatus {
		if slices.Contains(cs, code) {
			return st
		}
	}
	return 0
}

// checkExamples validates the example and examples of each JSON media type against its schema.
func checkExamples(t *testing.T, doc *apiDoc, where string, content map[string]any) {
	t.Helper()
	for mt, mv := range content {
		media := asMap(mv)
		if mt != "application/json" {
			continue
		}
		if media["schema"] == nil {
			t.Errorf("%s: %s without schema", where, mt)
			continue
		}
		var exs []any
		if ex, ok := media["example"]; ok {
			exs = append(exs, ex)
		}
		for _, e := range asMap(media["examples"]) {
			exs = append(exs, asMap(e)["value"])
		}
		for _, ex := range exs {
			for _, p := range doc.validate(media["schema"], ex, "example") {
				t.Errorf("%s: %s", where, p)
			}
		}
	}
}

// TestSchemaValidator makes sure the validator used by these tests rejects what it should,
// so that a passing TestOpenAPIDocument or answer check means something.
func TestSchemaValidator(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	job := map[string]any{"$ref": "#/components/schemas/Job"}
	good := `{"id":"1","queue":"q","type":"","state":"ready","priority":1024,"attempts":0,"max_attempts":25,
		"lease":"30s","releases":0,"buries":0,"kicks":0,"timeouts":0,"created_at":"2026-11-22T19:40:02.98658227Z"}`
	v, err := decodeJSON([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p := doc.validate(job, v, "job"); len(p) != 0 {
		t.Fatalf("a valid job is rejected: %v", p)
	}
	for name, mutate := range map[string]func(m map[string]any){
		"extra field":     func(m map[string]any) { m["surprise"] = true },
		"missing id":      func(m map[string]any) { delete(m, "id") },
		"numeric id":      func(m map[string]any) { m["id"] = json.Number("1") },
		"bad state":       func(m map[string]any) { m["state"] = "done" },
		"priority 2^32":   func(m map[string]any) { m["priority"] = json.Number("4294967296") },
		"float attempts":  func(m map[string]any) { m["attempts"] = json.Number("1.5") },
		"bad time":        func(m map[string]any) { m["created_at"] = "yesterday" },
		"bad duration":    func(m map[string]any) { m["lease"] = "30 seconds" },
		"bad queue":       func(m map[string]any) { m["queue"] = "-q" },
		"metadata number": func(m map[string]any) { m["metadata"] = map[string]any{"a": json.Number("1")} },
	} {
		w, _ := decodeJSON([]byte(good))
		mutate(w.(map[string]any))
		if p := doc.validate(job, w, "job"); len(p) == 0 {
			t.Errorf("%s: not rejected", name)
		}
	}
	// oneOf of the enqueue answer: a batch result is not a job and the other way round.
	batch, _ := decodeJSON([]byte(`{"jobs":[{"id":"1","state":"ready"},{"error":{"code":"internal","message":"x"}}]}`))
	oneOf := asMap(asMap(asMap(asMap(asMap(doc.paths()["/v1/queues/{queue}/jobs"])["post"])["responses"])["200"])["content"])
	schema := asMap(oneOf["application/json"])["schema"]
	if p := doc.validate(schema, batch, "body"); len(p) != 0 {
		t.Errorf("batch result rejected: %v", p)
	}
	if p := doc.validate(schema, v, "body"); len(p) == 0 {
		t.Errorf("a job without duplicate is accepted as a 200 enqueue answer")
	}
}
