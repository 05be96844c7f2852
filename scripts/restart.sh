#!/usr/bin/env bash
# Restart time against the number of stored jobs: a fresh server is filled with N ready jobs
# over Q queues, stopped (SIGTERM, or SIGKILL with KILL=1), and started again on the same
# data; the script times until /healthz answers and until a first reservation is answered.
#
#   scripts/restart.sh 1000000 10
#   KILL=1 scripts/restart.sh 1000000 10
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000} q=${2:-10}
addr=127.0.0.1:17530
work=$(mktemp -d /tmp/spool-restart.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/spool" ./cmd/spool
go build -o "$work/spool-bench" ./cmd/spool-bench
serve() {
  "$work/spool" serve --data "$work/data" --http "$addr" --log-level warn >>"$work/serve.log" 2>&1 &
  pid=$!
}
healthy() { until curl -sf "http://$addr/healthz" >/dev/null; do sleep 0.05; done; }
serve
healthy
echo "filling: $n ready jobs in $q queues"
"$work/spool-bench" -mode http-batch -target "http://$addr" -p 4 -c 0 -jobs "$n" -batch 1000 \
  -queues "$q" -queue r -pid "$pid"
sig=TERM
[ -n "${KILL:-}" ] && sig=KILL
kill -s "$sig" "$pid"
wait "$pid" 2>/dev/null || true
echo "data folder: $(du -sh "$work/data" | cut -f1); stopped with SIG$sig"
start=$(date +%s.%N)
serve
healthy
t1=$(date +%s.%N)
curl -sf -XPOST "http://$addr/v1/reserve" -H 'Content-Type: application/json' \
  -d '{"queues":["r-0"],"wait":"0s","max":1}' >/dev/null
t2=$(date +%s.%N)
printf 'restart to healthy %.2f s, first reservation answered %.2f s, RSS %s\n' \
  "$(echo "$t1 - $start" | bc)" "$(echo "$t2 - $start" | bc)" "$(awk '/VmRSS/{printf "%d MiB", $2/1024}' "/proc/$pid/status")"
