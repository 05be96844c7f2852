package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spoolq/spool/internal/spooltest"
)

// Every metric the Grafana dashboard in docs/ queries is one a node exports.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	srv := spooltest.Start(t, nil)
	resp, err := http.Post(srv.URL+"/v1/queues/dash/jobs", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	exported := string(body)
	name := regexp.MustCompile(`spool_[a-z_]+`)
	seen := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				seen++
				if !strings.Contains(exported, "\n"+m) && !strings.Contains(exported, "# TYPE "+strings.TrimSuffix(m, "_bucket")+" ") {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, m)
				}
			}
		}
	}
	if seen < 10 {
		t.Fatalf("found %d metric names in the dashboard", seen)
	}
}
