package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/internal/spooltest"
)

// keys lists the object keys of a JSON document, nested ones as "a.b", sorted.
func keys(t *testing.T, data []byte) []string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, data)
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			out = append(out, prefix+k)
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", v)
	sort.Strings(out)
	return out
}

// 'spool stats --json' prints the API's format, and the text form shows only what the
// server sends.
func TestStatsIsTheAPIFormat(t *testing.T) {
	t.Parallel()
	srv := spooltest.Start(t, nil)
	s := "--server=" + srv.URL
	ok(t, "enqueue", "st", s)
	spooltest.Eventually(t, 10*time.Second, func() error {
		r := ok(t, "stats", s, "--json")
		if !strings.Contains(r.stdout, `"enqueued": 1`) {
			return fmt.Errorf("totals not flushed yet:\n%s", r.stdout)
		}
		return nil
	})
	resp, err := http.Get(srv.URL + "/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	api, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cli := ok(t, "stats", s, "--json")
	if got, want := keys(t, []byte(cli.stdout)), keys(t, api); !reflect.DeepEqual(got, want) {
		t.Errorf("stats --json keys %v\nAPI keys %v", got, want)
	}
	text := ok(t, "stats", s).stdout
	if strings.Contains(text, "node:") || !strings.Contains(text, "enqueued 1, reserves 0") || !strings.Contains(text, "1 (0 paused)") ||
		!strings.Contains(text, "/s (last minute)") {
		t.Errorf("stats:\n%s", text)
	}
}
