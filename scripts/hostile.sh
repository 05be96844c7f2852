#!/usr/bin/env bash
# Soak run of spool under hostile clients, for what does not fit the test suite (issue 19):
#   1. a normal client's latency (p50/p99) while SLOW slowloris connections are held open;
#   2. RSS while 8 clients send 60 MiB batch bodies at once, with and without the memory
#      budget (--max-inflight);
#   3. a beanstalkd client that reserves thousands of jobs and never reads: how long until
#      its jobs are back in ready, and how long SIGTERM then takes.
# Descriptor and goroutine counts are printed after each phase (they should return to the
# baseline). Needs curl and python3.
#
#   scripts/hostile.sh                 # ~2 minutes
#   SLOW=1000 DURATION=30s scripts/hostile.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SLOW=${SLOW:-1000}          # slowloris connections in phase 1
DURATION=${DURATION:-20s}   # length of phase 1
RATE=${RATE:-200}           # normal client's jobs/s in phase 1
HOG=${HOG:-5000}            # jobs the beanstalkd hog reserves in phase 3
PHASES=${PHASES:-123}       # which phases to run
HTTP=127.0.0.1:17520 BEAN=127.0.0.1:11320
work=$(mktemp -d /tmp/spool-hostile.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'echo "failed at line $LINENO" >&2; tail -5 "$work/server.log" >&2' ERR

go build -o "$work/spool" ./cmd/spool
go build -o "$work/spool-bench" ./cmd/spool-bench

start() { # extra flags...
  rm -rf "$work/data"
  "$work/spool" serve --data "$work/data" --http "$HTTP" --beanstalkd "$BEAN" --log-level warn "$@" 2>>"$work/server.log" &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://$HTTP/healthz" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop() {
  local t0; t0=$(date +%s.%N)
  kill -TERM "$pid"; wait "$pid" || true; pid=
  echo "SIGTERM to exit: $(echo "$(date +%s.%N) - $t0" | bc) s"
}
counts() {
  local g
  g=$(curl -fs "http://$HTTP/metrics" | awk '/^go_goroutines /{print $2}')
  echo "  fds $(ls /proc/"$pid"/fd | wc -l), goroutines $g, RSS $(awk '/VmRSS/{print $2/1024 " MiB"}' /proc/"$pid"/status), peak RSS $(awk '/VmHWM/{print $2/1024 " MiB"}' /proc/"$pid"/status)"
}

if [[ $PHASES == *1* ]]; then
echo "## 1. normal client with $SLOW slowloris connections open ($DURATION at $RATE jobs/s)"
start
counts
"$work/spool-bench" -quiet -mode http-single -target "http://$HTTP" -rate "$RATE" -duration "$DURATION" -p 2 -c 2 -jobs 0 -slow "$SLOW"
sleep 12 # the last slow connections are cut after --http-read-header-timeout
counts

stop >/dev/null
fi

if [[ $PHASES == *2* ]]; then
echo "## 2. 8 concurrent 60 MiB batch bodies (malformed at their very end: read whole, nothing stored)"
python3 - "$work/big.json" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('{"jobs":[')
    f.write(",".join('{"payload":"%s"}' % ("p" * 61000) for _ in range(1000)))
    f.write("]!")
PY
burst() {
  local pids=()
  for _ in $(seq 8); do
    curl -s -o /dev/null -w "%{http_code} " -H 'Content-Type: application/json' --data-binary @"$work/big.json" "http://$HTTP/v1/queues/big/jobs" &
    pids+=($!)
  done
  wait "${pids[@]}"; echo
}
for budget in 512 -1; do
  start --max-inflight "$budget"
  echo "--max-inflight $budget: answers:"
  burst
  counts
  stop >/dev/null
done
fi

if [[ $PHASES == *3* ]]; then
echo "## 3. a beanstalkd client reserves $HOG jobs and never reads"
start --beanstalkd-timeout 5s
python3 - "$BEAN" "$HOG" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split(":"); n = int(sys.argv[2])
p = socket.create_connection((host, int(port)))
body = b"x" * 1000
for i in range(0, n, 100):  # a hundred at a time: the server cuts a client that does not read
    k = min(100, n - i)
    p.sendall(b"".join(b"put 0 0 600 %d\r\n%s\r\n" % (len(body), body) for _ in range(k)))
    got = b""
    while got.count(b"\r\n") < k:
        got += p.recv(1 << 20)
hog = socket.create_connection((host, int(port)))
hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
hog.sendall(b"reserve\r\n" * n)      # and never read
t0 = time.time()
def stats():
    p.sendall(b"stats\r\n"); d = b""
    while not d.endswith(b"\r\n") or d.count(b"\r\n") < 2: d += p.recv(65536)
    return dict(l.split(": ", 1) for l in d.decode().split("\n")[2:] if ": " in l)
peak = 0
while True:
    s = stats(); r = int(s["current-jobs-reserved"]); peak = max(peak, r)
    if r == 0 and peak > 0 and s["current-connections"] == "1":
        break
    if time.time() - t0 > 120:
        print("  hog still holds", r, "jobs after 120 s"); break
    time.sleep(0.2)
print("  the hog held at most %d jobs; all back in ready %.1f s after it stopped reading" % (peak, time.time() - t0))
PY
counts
hog_pid=
python3 - "$BEAN" "$HOG" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":"); n = int(sys.argv[2])
hog = socket.create_connection((host, int(port)))
hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
hog.sendall(b"reserve\r\n" * n)
time.sleep(60)
PY
hog_pid=$!
sleep 1
stop
kill "$hog_pid" 2>/dev/null || true
fi
