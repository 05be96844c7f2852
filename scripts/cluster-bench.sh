#!/usr/bin/env bash
# Cluster numbers for docs/benchmarks.md ("Cluster"): jobs/s with 1 and 16 queues on one
# node (R1), three nodes (R3) and three nodes with R1 queues spread over them; p99
# enqueue→start at 1,000 jobs/s on R3. All nodes run on this machine: the numbers measure
# relative cost, not the capacity of three machines. Load is sent to all three nodes at once
# (one spool-bench per node, sharing the queues) and the rates added up.
#
#   scripts/cluster-bench.sh            # DURATION=10s per run
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
work=$(mktemp -d /tmp/spool-cluster-bench.XXXXXX)
go build -o "$work/spool" ./cmd/spool
go build -o "$work/spool-bench" ./cmd/spool-bench
export BIN="$work/spool"

single() {
  "$BIN" serve --data "$work/single" --http 127.0.0.1:17420 >"$work/single.log" 2>&1 &
  spid=$!
  for _ in $(seq 300); do curl -fs http://127.0.0.1:17420/healthz >/dev/null && break; sleep 0.1; done
}

# run NAME QUEUES URL...: one spool-bench per URL for DURATION, the completed rates added.
run() {
  local name=$1 queues=$2
  shift 2
  local pids=() i=0
  for url in "$@"; do
    i=$((i + 1))
    "$work/spool-bench" -quiet -target "$url" -jobs 0 -duration "$DURATION" -p 2 -c 2 -queues "$queues" \
      -queue "b$name" >"$work/$name-$i.txt" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  local total=0
  for f in "$work/$name"-*.txt; do
    r=$(sed -n 's/^throughput: \([0-9]*\) jobs.*/\1/p' "$f")
    total=$((total + ${r:-0}))
  done
  echo "| $name | $queues | $total |"
}

echo "| setup | queues | jobs/s completed |"
echo "|---|---|---|"
single
run single-R1 1 http://127.0.0.1:17420
run single-R1 16 http://127.0.0.1:17420
kill "$spid"; wait "$spid" || true

nodes=(http://127.0.0.1:17421 http://127.0.0.1:17422 http://127.0.0.1:17423)
DIR="$work/r3" HTTP_BASE=17420 ROUTE_BASE=16230 scripts/cluster-local.sh start >/dev/null
run cluster-R3 1 "${nodes[@]}"
run cluster-R3 16 "${nodes[@]}"
"$work/spool-bench" -quiet -target "${nodes[0]}" -jobs 0 -duration "$DURATION" -rate 1000 -batch 1 -p 4 -c 4 -queue lat >"$work/lat.txt" 2>&1 || true
DIR="$work/r3" scripts/cluster-local.sh stop

DIR="$work/r1" HTTP_BASE=17420 ROUTE_BASE=16230 REPLICAS=1 scripts/cluster-local.sh start >/dev/null
run cluster-R1-spread 1 "${nodes[@]}"
run cluster-R1-spread 16 "${nodes[@]}"
DIR="$work/r1" scripts/cluster-local.sh stop

echo
echo "R3, 1,000 jobs/s offered through one node:"
cat "$work/lat.txt"
echo "(raw output in $work)"
