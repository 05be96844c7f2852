#!/usr/bin/env bash
# Bytes of memory (RSS) and disk (data directory) per waiting job on a three-node R3
# cluster of local processes (docs/benchmarks.md, "Cluster"): a fresh cluster
# (scripts/cluster-local.sh), READY ready jobs then DELAYED delayed ones (-delay 1h) enqueued
# with spool-bench, 128-byte payloads, a third through each node. Each node's RSS and data
# directory are read before and after each step, 3 s after every replica is current, and
# the RSS again IDLE seconds later (Go and JetStream give memory back over time).
#
#   scripts/cluster-mem.sh                  # READY=200000 DELAYED=100000 IDLE=60
#   RATE=1000 scripts/cluster-mem.sh        # then enqueue→start at RATE jobs/s for 10 s
set -euo pipefail
cd "$(dirname "$0")/.."
READY=${READY:-200000}
DELAYED=${DELAYED:-100000}
RATE=${RATE:-}
IDLE=${IDLE:-60}
work=$(mktemp -d /tmp/spool-cluster-mem.XXXXXX)
go build -o "$work/spool" ./cmd/spool
go build -o "$work/spool-bench" ./cmd/spool-bench
export BIN="$work/spool" DIR="$work/r3" HTTP_BASE=17520 ROUTE_BASE=16330 PPROF_BASE=16560
trap 'scripts/cluster-local.sh stop' EXIT
scripts/cluster-local.sh start >/dev/null
nodes=(http://127.0.0.1:17521 http://127.0.0.1:17522 http://127.0.0.1:17523)

# settle: wait (up to a minute) until no follower of any stream is behind, then a little
# for the heap.
settle() {
  local t0=$SECONDS
  for _ in $(seq 120); do
    ci=$(curl -fs "${nodes[0]}/v1/cluster" | sed 's/.*"streams"://' || true)
    if [ -n "$ci" ] && ! grep -q '"current":false' <<<"$ci"; then
      break
    fi
    sleep 0.5
  done
  if grep -q '"current":false' <<<"$ci"; then
    echo "settle: a follower still not current after $((SECONDS - t0)) s: $ci" >&2
  fi
  sleep 3
}

# sample LABEL: per node "rss_kib bytes heap_kib" into $work/LABEL; heap: the bytes in use
# after a GC (the heap profile's inuse_space total).
sample() {
  : >"$work/$1"
  for i in 1 2 3; do
    pid=$(cat "$DIR/n$i.pid")
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    disk=$(du -sb "$DIR/n$i" | cut -f1)
    curl -fs "http://127.0.0.1:$((PPROF_BASE + i))/debug/pprof/heap?gc=1" -o "$work/$1-n$i.heap"
    heap=$(go tool pprof -sample_index=inuse_space -unit=kb -top "$work/$1-n$i.heap" 2>/dev/null |
      sed -n 's/.* of \([0-9.]*\)kB total.*/\1/p' | cut -d. -f1)
    echo "$rss $disk ${heap:-0}" >>"$work/$1"
  done
}

# enqueue N QUEUE DELAY: N jobs, a third through each node.
enqueue() {
  local n=$1 queue=$2 delay=$3 pids=()
  for url in "${nodes[@]}"; do
    "$work/spool-bench" -quiet -mode http-batch -target "$url" -p 2 -c 0 -jobs $((n / 3)) -batch 1000 \
      -delay "$delay" -queue "$queue" >>"$work/enqueue-$queue.txt" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

# report LABEL BEFORE AFTER N: RSS, heap and disk from BEFORE (idle) to AFTER, and AFTER-idle.
report() {
  local label=$1 n=$4 tr=0 tri=0 th=0 td=0
  for i in 1 2 3; do
    read -r r0 d0 h0 < <(sed -n "${i}p" "$work/$2-idle")
    read -r r1 d1 _ < <(sed -n "${i}p" "$work/$3")
    read -r r2 _ h2 < <(sed -n "${i}p" "$work/$3-idle")
    dr=$(((r1 - r0) * 1024)) dri=$(((r2 - r0) * 1024)) dh=$(((h2 - h0) * 1000)) dd=$((d1 - d0))
    tr=$((tr + dr)) tri=$((tri + dri)) th=$((th + dh)) td=$((td + dd))
    echo "| $label | n$i | $((r0 / 1024)) → $((r1 / 1024)) MiB: $((dr / n)) | → $((r2 / 1024)) MiB: $((dri / n)) | $((h0 / 1000)) → $((h2 / 1000)) MB: $((dh / n)) | $((d0 / 1048576)) → $((d1 / 1048576)) MiB: $((dd / n)) |"
  done
  echo "| $label | all three | **$((tr / n))** | **$((tri / n))** | **$((th / n))** | **$((td / n))** |"
}

# step LABEL: samples LABEL (settled) and LABEL-idle (IDLE seconds later).
step() {
  settle
  sample "$1"
  sleep "$IDLE"
  sample "$1-idle"
}

step fresh
enqueue "$READY" mem-ready 0
step ready
enqueue "$DELAYED" mem-delayed 1h
step delayed
READY=$((READY / 3 * 3)) DELAYED=$((DELAYED / 3 * 3))
echo "uptime: $(uptime)"
echo "| jobs | node | RSS, 3 s after: bytes per job | RSS, ${IDLE} s later | Go heap in use, ${IDLE} s later | data directory |"
echo "|---|---|---|---|---|---|"
report "$READY ready" fresh ready "$READY"
report "$DELAYED delayed" ready delayed "$DELAYED"

if [ -n "$RATE" ]; then
  echo
  echo "R3, $RATE jobs/s offered through one node for 10 s (one job per request):"
  "$work/spool-bench" -quiet -mode http-batch -batch 1 -p 4 -c 4 -rate "$RATE" -jobs 0 -duration 10s \
    -target "${nodes[0]}" -queue lat 2>&1 | tail -n +1
fi
echo "(raw output in $work)"
