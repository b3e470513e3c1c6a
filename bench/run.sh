#!/usr/bin/env bash
# `make bench`: the relay benchmark. Each server runs pinned to CPU 0, the load generator
# to CPU 1 (see ../shared/ANCHORS.md for the harness the anchors were measured in):
#   - throughput and one-hop latency at 50 and 500 pairs (rooms of 2), 3 rounds, the
#     targets taking turns within each round;
#   - RSS per idle joined connection at 10k and 50k connections;
# for meshwire, the null forwarder (the lower bound on the limit), and, when installed,
# matchbox_server and peerjs-server. Results are printed and written into
# docs/benchmarks.md (between markers) by `meshwire-bench report`.
#
# Then the cluster benchmark (when redis-server is installed): the same load against one
# relay, and across a two-instance cluster over Redis with every pair split between the
# instances, closed-loop and paced at BENCH_CLUSTER_RATE msgs/s (its own section).
#
# Knobs (environment): BENCH_RUNS (3), BENCH_SECONDS (10s), BENCH_PAIRS ("50 500"),
# BENCH_IDLE ("10000 50000"), BENCH_TARGETS ("meshwire forwarder matchbox peerjs"),
# BENCH_DOC (docs/benchmarks.md; empty = print only), BENCH_CLUSTER (1; 0 skips it,
# "only" runs nothing else), BENCH_CLUSTER_RATE (20000), BENCH_CLUSTER_PAIRS (50).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-10s}
PAIRS=${BENCH_PAIRS:-"50 500"}
IDLE=${BENCH_IDLE:-"10000 50000"}
TARGETS=${BENCH_TARGETS:-"meshwire forwarder matchbox peerjs"}
DOC=${BENCH_DOC-docs/benchmarks.md}
PORT=${BENCH_PORT:-18480}

say() { printf 'bench: %s\n' "$*" >&2; }

CLUSTER=${BENCH_CLUSTER:-1}
CLUSTER_RATE=${BENCH_CLUSTER_RATE:-20000}
CLUSTER_PAIRS=${BENCH_CLUSTER_PAIRS:-50}
[ "$CLUSTER" = only ] && TARGETS= && IDLE=

cargo build --release --locked -p meshwire-relay -p meshwire-bench >&2
BIN=target/release
RESULTS=$(mktemp /tmp/meshwire-bench.XXXXXX.jsonl)
NOTES=()
SERVER_PID=

# One core for the server, the other for the load; without two cores, share.
# The server's core busy share is measured only when it has a core of its own.
if [ "$(nproc)" -ge 2 ]; then SERVER_CPU=0; LOAD_CPU=1; else SERVER_CPU=0; LOAD_CPU=0; fi
SERVER_CPU_ARGS=()
[ "$SERVER_CPU" != "$LOAD_CPU" ] && SERVER_CPU_ARGS=(--server-cpu "$SERVER_CPU")

CLUSTER_PIDS=()
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
  for pid in "${CLUSTER_PIDS[@]+"${CLUSTER_PIDS[@]}"}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CLUSTER_PIDS=()
}
trap stop_server EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  say "server on port $PORT did not come up"
  return 1
}

# Starts target $1 on $PORT pinned to SERVER_CPU; sets SERVER_PID. Returns 1 when the
# target is not installed (an anchor).
start_server() {
  local target=$1
  case "$target" in
    meshwire)
      # Benchmark settings: no rate limit, room for 50k connections, one worker
      # (the server gets one core, like every target).
      RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN/meshwire-relay" --bind 127.0.0.1 --port "$PORT" \
        --rate-limit 0 --max-connections 0 --workers 1 >/dev/null 2>&1 &
      ;;
    forwarder)
      taskset -c "$SERVER_CPU" "$BIN/meshwire-bench" forwarder --port "$PORT" >/dev/null 2>&1 &
      ;;
    matchbox)
      command -v matchbox_server >/dev/null 2>&1 || return 1
      RUST_LOG=warn taskset -c "$SERVER_CPU" matchbox_server "127.0.0.1:$PORT" >/dev/null 2>&1 &
      ;;
    peerjs)
      [ -x bench/anchors/node_modules/.bin/peerjs ] || return 1
      taskset -c "$SERVER_CPU" bench/anchors/node_modules/.bin/peerjs --port "$PORT" --concurrent_limit 1000000 >/dev/null 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  wait_port
}

ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
[ "$FD_LIMIT" = unlimited ] && FD_LIMIT=1000000000
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# Installed targets only; the anchors are optional.
RUN_TARGETS=()
for target in $TARGETS; do
  if start_server "$target"; then
    stop_server
    RUN_TARGETS+=("$target")
  else
    NOTES+=("$target: not installed, skipped (see bench/install-anchors.sh)")
  fi
done

# Throughput: the targets take turns within each round (meshwire, forwarder, …, then
# again), so a drift in the machine's speed during the benchmark (a neighbour on the
# host, clock changes) touches every target alike instead of whichever ran last.
for run in $(seq 1 "$RUNS"); do
  for pairs in $PAIRS; do
    for target in "${RUN_TARGETS[@]+"${RUN_TARGETS[@]}"}"; do
      start_server "$target"
      say "$target, $pairs pairs, run $run/$RUNS"
      taskset -c "$LOAD_CPU" "$BIN/meshwire-bench" load --target "$target" \
        --url "ws://127.0.0.1:$PORT" --pairs "$pairs" --duration "$SECONDS_PER_RUN" \
        "${SERVER_CPU_ARGS[@]+"${SERVER_CPU_ARGS[@]}"}" \
        | tee -a "$RESULTS" >&2 || NOTES+=("$target at $pairs pairs: run $run failed")
      stop_server
    done
  done
done

for target in "${RUN_TARGETS[@]+"${RUN_TARGETS[@]}"}"; do
  for conns in $IDLE; do
    # The server needs one descriptor per connection, and so does the load generator:
    # under a lower open-file limit, measure the most connections it allows instead.
    if [ "$conns" -ge "$FD_LIMIT" ]; then
      fit=$(( (FD_LIMIT - 1000) / 1000 * 1000 ))
      NOTES+=("$target: $conns idle connections need more than this machine's open-file limit ($FD_LIMIT, a hard limit here); measured at $fit instead")
      conns=$fit
    fi
    start_server "$target"
    say "$target, $conns idle connections"
    taskset -c "$LOAD_CPU" "$BIN/meshwire-bench" idle --target "$target" \
      --url "ws://127.0.0.1:$PORT" --conns "$conns" --pid "$SERVER_PID" \
      | tee -a "$RESULTS" >&2 || NOTES+=("$target at $conns idle connections: failed")
    stop_server
  done
done

if [ "$CLUSTER" != only ]; then
  note_args=()
  for n in "${NOTES[@]+"${NOTES[@]}"}"; do note_args+=(--note "$n"); done
  "$BIN/meshwire-bench" report --results "$RESULTS" ${DOC:+--doc "$DOC"} \
    --command "make bench" --date "$(date -u +%Y-%m-%d)" --machine "$machine" \
    "${note_args[@]+"${note_args[@]}"}"
fi
rm -f "$RESULTS"

# ---- Cluster: one relay against two instances over Redis, same harness ----
# Waits until GET /ready on port $1 answers 200 (the instance is registered in Redis).
wait_ready() {
  for _ in $(seq 1 100); do
    # In a subshell: the descriptor and the silenced errors stay there.
    if (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 \
        && head -1 <&3 | grep -q ' 200') 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  say "relay on port $1 never became ready"
  return 1
}

relay_args=(--bind 127.0.0.1 --rate-limit 0 --max-connections 0 --workers 1)
# $1 = single | cluster: starts the servers pinned to SERVER_CPU (all of them: the
# load generator keeps its own core, as in the relay benchmark).
start_cluster() {
  if [ "$1" = single ]; then
    RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN/meshwire-relay" "${relay_args[@]}" --port "$PORT" >/dev/null 2>&1 &
    CLUSTER_PIDS+=($!)
    wait_ready "$PORT"
    return
  fi
  local redis_port=$((PORT + 2))
  taskset -c "$SERVER_CPU" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
  CLUSTER_PIDS+=($!)
  for p in "$PORT" $((PORT + 1)); do
    RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN/meshwire-relay" "${relay_args[@]}" --port "$p" \
      --redis-url "redis://127.0.0.1:$redis_port" --secret bench >/dev/null 2>&1 &
    CLUSTER_PIDS+=($!)
  done
  wait_ready "$PORT" && wait_ready $((PORT + 1))
}

if [ "$CLUSTER" != 0 ]; then
  if ! command -v redis-server >/dev/null 2>&1; then
    say "cluster benchmark skipped: redis-server is not installed (scripts/setup.sh installs it)"
  else
    CRESULTS=$(mktemp /tmp/meshwire-cluster-bench.XXXXXX.jsonl)
    CLUSTER_LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
    for run in $(seq 1 "$RUNS"); do
      for mode in single cluster; do
        label="single instance"; url2=()
        if [ "$mode" = cluster ]; then label="cluster, cross-instance"; url2=(--url2 "ws://127.0.0.1:$((PORT + 1))"); fi
        for rate in closed "$CLUSTER_RATE"; do
          start_cluster "$mode"
          rate_args=(); [ "$rate" != closed ] && rate_args=(--rate "$rate")
          say "$label, $CLUSTER_PAIRS pairs, ${rate} load, run $run/$RUNS"
          taskset -c "$LOAD_CPU" "$BIN/meshwire-bench" load --target meshwire \
            --url "ws://127.0.0.1:$PORT" "${url2[@]+"${url2[@]}"}" --pairs "$CLUSTER_PAIRS" \
            --duration "$SECONDS_PER_RUN" --label "$label" "${rate_args[@]+"${rate_args[@]}"}" \
            | tee -a "$CRESULTS" >&2 || say "$label ($rate): run $run failed"
          stop_server
        done
      done
    done
    setup="relays (one worker thread each) and redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2) all pinned to core $SERVER_CPU, the load generator to core $LOAD_CPU; Redis without persistence, on loopback; machine load average (1/5/15 min) before the cluster runs: $CLUSTER_LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?") (other work on the machine shows up in the tails)"
    "$BIN/meshwire-bench" cluster-report --results "$CRESULTS" ${DOC:+--doc "$DOC"} \
      --date "$(date -u +%Y-%m-%d)" --machine "$machine" --setup "$setup"
    rm -f "$CRESULTS"
  fi
fi
