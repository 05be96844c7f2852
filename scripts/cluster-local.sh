#!/usr/bin/env bash
# Three spool nodes as local processes forming one cluster (docs/cluster.md): HTTP API on
# 127.0.0.1:7421, :7422, :7423, routes on 127.0.0.1:6231..6233, data under $DIR/n1..n3.
#
#   scripts/cluster-local.sh          # in the foreground; Ctrl-C stops all three
#   scripts/cluster-local.sh start    # in the background (logs and pids in $DIR)
#   scripts/cluster-local.sh stop
#
#   spool --server http://127.0.0.1:7421,http://127.0.0.1:7422,http://127.0.0.1:7423 cluster
#
# Environment: DIR (./cluster-data), BIN (built from this checkout when empty), HTTP_BASE
# (7420: nodes get +1..+3), ROUTE_BASE (6230), REPLICAS (empty: 3), EXTRA (more serve flags),
# PPROF_BASE (empty: off; else Go profiles on 127.0.0.1:PPROF_BASE+1..+3).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DIR:-./cluster-data}
HTTP_BASE=${HTTP_BASE:-7420}
ROUTE_BASE=${ROUTE_BASE:-6230}
REPLICAS=${REPLICAS:-}
EXTRA=${EXTRA:-}
mkdir -p "$DIR"

stop() {
  for i in 1 2 3; do
    if [ -f "$DIR/n$i.pid" ]; then
      kill "$(cat "$DIR/n$i.pid")" 2>/dev/null || true
    fi
  done
  for i in 1 2 3; do
    if [ -f "$DIR/n$i.pid" ]; then
      pid=$(cat "$DIR/n$i.pid")
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      rm -f "$DIR/n$i.pid"
    fi
  done
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi

if [ -z "${BIN:-}" ]; then
  BIN="$DIR/spool"
  go build -o "$BIN" ./cmd/spool
fi
peers="127.0.0.1:$((ROUTE_BASE + 1)),127.0.0.1:$((ROUTE_BASE + 2)),127.0.0.1:$((ROUTE_BASE + 3))"
for i in 1 2 3; do
  args=(serve --data "$DIR/n$i" --http "127.0.0.1:$((HTTP_BASE + i))"
    --cluster-name local --node "n$i" --cluster "127.0.0.1:$((ROUTE_BASE + i))" --peers "$peers")
  [ -n "$REPLICAS" ] && args+=(--replicas "$REPLICAS")
  [ -n "${PPROF_BASE:-}" ] && args+=(--pprof "127.0.0.1:$((PPROF_BASE + i))")
  # shellcheck disable=SC2086
  "$BIN" "${args[@]}" $EXTRA >"$DIR/n$i.log" 2>&1 &
  echo $! >"$DIR/n$i.pid"
done
# Ready when each node knows a meta leader.
for i in 1 2 3; do
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$((HTTP_BASE + i))/healthz" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$((HTTP_BASE + i))/healthz" >/dev/null || { echo "node n$i not ready; see $DIR/n$i.log" >&2; stop; exit 1; }
done
echo "cluster up: http://127.0.0.1:$((HTTP_BASE + 1)),http://127.0.0.1:$((HTTP_BASE + 2)),http://127.0.0.1:$((HTTP_BASE + 3))"
if [ "${1:-}" = start ]; then
  exit 0
fi
trap stop INT TERM EXIT
wait
