#!/usr/bin/env bash
# spool's benchmark suite, side by side with beanstalkd 1.12 (binlog on) and the raw JetStream
# ceiling, and spool's Go SDK side by side with Asynq on Redis and River on PostgreSQL, in one
# run on this machine. Results go to stdout as a markdown report; the raw output of every run
# to $OUT/*.txt. Needs beanstalkd (apt-get install beanstalkd); the Go SDK section installs
# redis-server and postgresql from Debian when they are missing (as root).
#
#   scripts/bench.sh                 # default sizes (~12 minutes on 2 cores)
#   JOBS=20000 QUICK=1 scripts/bench.sh
#   ONLY=sdk SDKJOBS=20000 scripts/bench.sh   # only the Go SDK section
#   ONLY=sqs JOBS=20000 scripts/bench.sh       # only the SQS front's section
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-100000}     # jobs per throughput run
P=${P:-4}                # producers
C=${C:-4}                # consumers
MEMJOBS=${MEMJOBS:-1000000}
QUICK=${QUICK:-}
ONLY=${ONLY:-}           # "sdk": only the Go SDK section; "sqs": only the SQS front's
SDKJOBS=${SDKJOBS:-50000} # Go SDK section: jobs per run
SDKP=${SDKP:-4}          # producers
SDKC=${SDKC:-16}         # worker concurrency
SDKSIZE=${SDKSIZE:-256}  # payload bytes
SDKBATCH=${SDKBATCH:-100} # jobs per EnqueueBatch / InsertMany
PGOPTS=${PGOPTS:-}       # extra postgres settings, e.g. "-c synchronous_commit=off"
OUT=${OUT:-$(mktemp -d /tmp/spool-bench.XXXXXX)}
mkdir -p "$OUT"
work=$(mktemp -d /tmp/spool-bench-work.XXXXXX)
HTTP=127.0.0.1:17420 NATS=127.0.0.1:14222 BSPOOL=127.0.0.1:11301 BREF=127.0.0.1:11302
REDIS=127.0.0.1:16379 PGPORT=15432

if [ -z "$ONLY" ]; then
  command -v beanstalkd >/dev/null || { echo "beanstalkd is not installed (apt-get install beanstalkd)" >&2; exit 1; }
fi
go build -o "$work/spool" ./cmd/spool
go build -o "$work/spool-bench" ./cmd/spool-bench
bench="$work/spool-bench -quiet"

pids=()
pgdir=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$pgdir" ] && stop_pg
  rm -rf "$work"
}
trap cleanup EXIT

start_spool() { # extra flags...
  rm -rf "$work/data"
  "$work/spool" serve --data "$work/data" --http "$HTTP" --nats-listen "$NATS" --beanstalkd "$BSPOOL" \
    --log-level warn "$@" >"$OUT/spool-serve.log" 2>&1 &
  spool_pid=$!; pids+=("$spool_pid")
  for _ in $(seq 100); do curl -sf "http://$HTTP/healthz" >/dev/null && return; sleep 0.1; done
  echo "spool did not start" >&2; cat "$OUT/spool-serve.log" >&2; exit 1
}
stop_spool() { kill "$spool_pid"; wait "$spool_pid" 2>/dev/null || true; }

# The Go SDK section's servers: Redis without persistence, a throwaway PostgreSQL cluster.
sdk_install() {
  local pkgs=()
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || pkgs+=(postgresql)
  [ ${#pkgs[@]} -eq 0 ] && return
  [ "$(id -u)" -eq 0 ] || { echo "missing ${pkgs[*]}: install them as root (apt-get install ${pkgs[*]})" >&2; exit 1; }
  echo "installing ${pkgs[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}
start_redis() {
  redis-server --bind 127.0.0.1 --port "${REDIS##*:}" --save '' --appendonly no --dir "$work" \
    --loglevel warning >"$OUT/redis.log" 2>&1 &
  redis_pid=$!; pids+=("$redis_pid")
  for _ in $(seq 100); do redis-cli -p "${REDIS##*:}" ping 2>/dev/null | grep -q PONG && return; sleep 0.1; done
  echo "redis-server did not start" >&2; cat "$OUT/redis.log" >&2; exit 1
}
stop_redis() { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; }
# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_pg() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pgctl="$bin/pg_ctl"
  pgdir=$(mktemp -d /tmp/spool-bench-pg.XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
  as_pg "$bin/initdb" -D "$pgdir/data" -U bench --auth=trust >"$OUT/postgres-initdb.log" 2>&1
  as_pg "$pgctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $pgdir $PGOPTS" >/dev/null
}
stop_pg() {
  as_pg "$pgctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
  cp "$pgdir/postgres.log" "$OUT/postgres.log" 2>/dev/null || true
  rm -rf "$pgdir"; pgdir=
}

# sdk_run mode, flags...: one sdk-bench run; prints "mode|jobs/s|enqueue jobs/s|how".
# Its progress goes to stderr.
# The row is named $SDKNAME when set.
sdk_run() {
  local mode=$1 name=${SDKNAME:-$1}; shift
  "$work/sdk-bench" -mode "$mode" -jobs "$SDKJOBS" -producers "$SDKP" -concurrency "$SDKC" \
    -size "$SDKSIZE" -batch "$SDKBATCH" "$@" >"$OUT/sdk-$name.txt" || { echo "$name|failed||(see stderr)"; return; }
  local tput enq how
  tput=$(awk '/^throughput:/{print $2}' "$OUT/sdk-$name.txt")
  enq=$(sed -n 's/^enqueue: .*(\([0-9]*\) jobs\/s)$/\1/p' "$OUT/sdk-$name.txt")
  how=$(sed -n 's/^how: //p' "$OUT/sdk-$name.txt")
  echo "$name|$tput|$enq|$how"
}

sdk_section() {
  sdk_install
  (cd bench/sdk && go build -o "$work/sdk-bench" .)
  echo
  echo "## Go SDK against Asynq on Redis and River on PostgreSQL"
  echo
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  echo "$(date -u +%FT%TZ), $(nproc) cores, $(go version | cut -d' ' -f3), Redis $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') (no persistence), PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') (${PGOPTS:-default settings}), spool with its default durability."
  echo "$SDKJOBS jobs of $SDKSIZE B, $SDKP producers, batches of $SDKBATCH, a worker with concurrency $SDKC and a no-op handler;"
  echo "from the first enqueue until every completion is stored. Each system runs alone, on a fresh server."
  echo "Command: \`${PGOPTS:+PGOPTS='$PGOPTS' }ONLY=sdk SDKJOBS=$SDKJOBS SDKP=$SDKP SDKC=$SDKC SDKSIZE=$SDKSIZE SDKBATCH=$SDKBATCH scripts/bench.sh\`"
  echo
  local rows=()
  start_spool
  rows+=("$(sdk_run spool -url "http://$HTTP")")
  stop_spool
  start_spool --retention 0 # Asynq keeps no finished task either
  rows+=("$(SDKNAME=spool-retention0 sdk_run spool -url "http://$HTTP")")
  stop_spool
  start_redis
  rows+=("$(sdk_run asynq -redis "$REDIS")")
  stop_redis
  start_pg
  rows+=("$(sdk_run river -pg "postgres://bench@127.0.0.1:$PGPORT/postgres")")
  stop_pg
  local ref
  ref=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$1=="asynq"{print $2}')
  echo "| system | jobs/s | ratio to Asynq | enqueue phase (jobs/s) |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}" | awk -F'|' -v ref="$ref" '{
    r = ($2+0 > 0 && ref+0 > 0) ? sprintf("%.2f×", $2/ref) : "-"
    printf "| %s | %s | %s | %s |\n", $1, $2, r, $3 }'
  echo
  printf '%s\n' "${rows[@]}" | awk -F'|' '{printf "- %s: %s\n", $1, $4}'
}

# The SQS front through the AWS SDK for Go v2 (sqs/sdktest, a module of its own).
sqs_section() {
  local sqs=127.0.0.1:19324 n=$((JOBS / 2))
  (cd sqs/sdktest && go build -o "$work/sqs-bench" ./cmd/sqs-bench)
  start_spool --sqs "$sqs"
  echo
  echo "## SQS front: SendMessageBatch, ReceiveMessage (10, long polling), DeleteMessageBatch"
  echo
  echo "AWS SDK for Go v2, $n messages of 128 B, $P producers, $C consumers (\`sqs/sdktest/cmd/sqs-bench\`):"
  echo
  "$work/sqs-bench" -endpoint "http://$sqs" -messages "$n" -producers "$P" -consumers "$C" 2>&1 |
    tee "$OUT/sqs.txt" | sed 's/^/    /'
  stop_spool
}

case "$ONLY" in
sdk)
  echo "# spool benchmark run (Go SDK section only)"
  sdk_section
  exit 0
  ;;
sqs)
  echo "# spool benchmark run (SQS section only)"
  sqs_section
  exit 0
  ;;
esac
start_beanstalkd() {
  rm -rf "$work/binlog"; mkdir -p "$work/binlog"
  beanstalkd -l 127.0.0.1 -p "${BREF##*:}" -b "$work/binlog" &
  bpid=$!; pids+=("$bpid"); sleep 0.5
}
stop_beanstalkd() { kill "$bpid"; wait "$bpid" 2>/dev/null || true; }
spool_beanstalk_up() { (exec 3<>"/dev/tcp/${BSPOOL%:*}/${BSPOOL##*:}") 2>/dev/null; }

run() { # name, args... ; prints "name|jobs/s|p50|p99|p99.9|cpu|rss"
  local name=$1; shift
  $bench "$@" >"$OUT/$name.txt" 2>&1 || { echo "$name|failed (see $OUT/$name.txt)"; return; }
  local tput lat cpu rss
  tput=$(awk '/^throughput:/{print $2}' "$OUT/$name.txt")
  lat=$(awk '/^enqueue→start:/{print $3"|"$5"|"$7}' "$OUT/$name.txt")
  cpu=$(awk '/^server CPU:/{print $4}' "$OUT/$name.txt" | tr -d '(')
  rss=$(awk '/^server RSS:/{print $3" MiB"}' "$OUT/$name.txt")
  echo "$name|$tput|${lat:-||}|${cpu:-}|${rss:-}"
}

echo "# spool benchmark run"
echo
echo "$(date -u +%FT%TZ), $(nproc) cores, $(go version | cut -d' ' -f3), $(beanstalkd -v), jobs per run: $JOBS, producers $P, consumers $C, payload 128 B."
echo "Raw output: $OUT. Command: \`JOBS=$JOBS P=$P C=$C scripts/bench.sh\`"
echo
echo "## Throughput (put/enqueue + reserve + delete/ack), as fast as possible"
echo
echo "| run | jobs/s | enqueue→start p50 | p99 | p99.9 | server CPU (% of a core) | server RSS |"
echo "|---|---|---|---|---|---|---|"
# First with no finished job kept (--retention 0: an ack is JetStream's ack alone; beanstalkd
# and Asynq keep nothing either), then on a fresh server with the default 1 h, which the later
# sections use.
start_spool --retention 0
start_beanstalkd
rows=()
rows+=("$(run spool-http-batch-retention0 -mode http-batch -target "http://$HTTP" -p "$P" -c "$C" -jobs "$JOBS" -batch 100)")
if spool_beanstalk_up; then
  rows+=("$(run spool-beanstalkd-port-retention0 -mode beanstalkd -target "$BSPOOL" -p "$P" -c "$C" -jobs "$JOBS" -pid "$spool_pid")")
fi
stop_spool
start_spool
rows+=("$(run raw-jetstream -mode nats -target "nats://$NATS" -p "$P" -c "$C" -jobs "$JOBS" -batch 100 -pid "$spool_pid")")
rows+=("$(run spool-http-batch -mode http-batch -target "http://$HTTP" -p "$P" -c "$C" -jobs "$JOBS" -batch 100)")
rows+=("$(run spool-http-single -mode http-single -target "http://$HTTP" -p "$P" -c "$C" -jobs $((JOBS / 5)))")
if spool_beanstalk_up; then
  rows+=("$(run spool-beanstalkd-port -mode beanstalkd -target "$BSPOOL" -p "$P" -c "$C" -jobs "$JOBS" -pid "$spool_pid")")
fi
rows+=("$(run beanstalkd-binlog -mode beanstalkd -target "$BREF" -p "$P" -c "$C" -jobs "$JOBS" -pid "$bpid")")
printf '%s\n' "${rows[@]}" | sed 's/|/ | /g; s/^/| /; s/$/ |/'
ref=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$1=="beanstalkd-binlog"{print $2}')
echo
echo "Ratio to beanstalkd 1.12 with binlog (jobs/s):"
printf '%s\n' "${rows[@]}" | awk -F'|' -v ref="$ref" '$2+0>0 && ref+0>0 {printf "- %s: %.2f×\n", $1, $2/ref}'

echo
echo "## Latency at a fixed arrival rate of 1,000 jobs/s (20 s)"
echo
echo "| run | jobs/s | enqueue→start p50 | p99 | p99.9 | server CPU | server RSS |"
echo "|---|---|---|---|---|---|---|"
{
  run latency-spool-http -mode http-batch -batch 1 -target "http://$HTTP" -p 4 -c 4 -rate 1000 -duration 20s -jobs 0
  if spool_beanstalk_up; then
    run latency-spool-beanstalkd -mode beanstalkd -target "$BSPOOL" -p 4 -c 4 -rate 1000 -duration 20s -jobs 0 -pid "$spool_pid"
  fi
  run latency-beanstalkd -mode beanstalkd -target "$BREF" -p 4 -c 4 -rate 1000 -duration 20s -jobs 0 -pid "$bpid"
} | sed 's/|/ | /g; s/^/| /; s/$/ |/'
stop_beanstalkd

if [ -z "$QUICK" ]; then
  echo
  echo "## Queues and payload size (HTTP batch)"
  echo
  echo "| run | jobs/s | enqueue→start p50 | p99 | p99.9 | server CPU | server RSS |"
  echo "|---|---|---|---|---|---|---|"
  {
    for q in 1 10 100; do
      run "queues-$q" -mode http-batch -target "http://$HTTP" -p "$P" -c "$C" -jobs "$JOBS" -queues "$q" -queue "q$q"
    done
    for size in 1024 16384; do
      run "payload-$size" -mode http-batch -target "http://$HTTP" -p "$P" -c "$C" -jobs $((JOBS / 2)) -size "$size" -queue "s$size"
    done
  } | sed 's/|/ | /g; s/^/| /; s/$/ |/'
  stop_spool

  echo
  echo "## fsync on every write (spool --fsync always, beanstalkd -f0)"
  echo
  echo "| run | jobs/s | enqueue→start p50 | p99 | p99.9 | server CPU | server RSS |"
  echo "|---|---|---|---|---|---|---|"
  start_spool --fsync always
  rm -rf "$work/binlog"; mkdir -p "$work/binlog"
  beanstalkd -l 127.0.0.1 -p "${BREF##*:}" -b "$work/binlog" -f0 &
  bpid=$!; pids+=("$bpid"); sleep 0.5
  {
    run fsync-always-http-batch -mode http-batch -target "http://$HTTP" -p "$P" -c "$C" -jobs $((JOBS / 5))
    run fsync-always-spool-beanstalkd -mode beanstalkd -target "$BSPOOL" -p "$P" -c "$C" -jobs $((JOBS / 20)) -pid "$spool_pid"
    run fsync-always-beanstalkd-f0 -mode beanstalkd -target "$BREF" -p "$P" -c "$C" -jobs $((JOBS / 20)) -pid "$bpid"
  } | sed 's/|/ | /g; s/^/| /; s/$/ |/'
  stop_beanstalkd
  stop_spool

  echo
  echo "## Memory per pending job (RSS growth of a fresh server, 128-byte payloads)"
  echo
  for kind in pending delayed; do
    start_spool
    sleep 1
    before=$(awk '/VmRSS/{print $2}' "/proc/$spool_pid/status")
    delay=0
    [ "$kind" = delayed ] && delay=1h
    $bench -mode http-batch -target "http://$HTTP" -p 4 -c 0 -jobs "$MEMJOBS" -batch 1000 -delay "$delay" \
      -queue "mem-$kind" >"$OUT/memory-$kind.txt" 2>&1
    sleep 2
    after=$(awk '/VmRSS/{print $2}' "/proc/$spool_pid/status")
    echo "- $MEMJOBS $kind jobs: RSS $((before / 1024)) MiB → $((after / 1024)) MiB: $(((after - before) * 1024 / MEMJOBS)) bytes per job"
    stop_spool
  done
else
  stop_spool
fi

sqs_section
sdk_section
