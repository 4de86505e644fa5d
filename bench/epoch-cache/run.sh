#!/usr/bin/env bash
# Relay throughput with the Redis epoch cache vs the memory cache, in one run, on
# loopback: a release relay pinned to CPU 1 (sink file:/dev/null, so only the ingest
# path is measured), wrk and redis-server on CPU 0, wrk posting batches shaped like a
# mesh's (bench/epoch-cache/batches.lua), rounds alternating memory / redis so that the
# machine's noise hits both alike. Reports batches/s, documents per relay CPU-second
# (from /proc/PID/stat) and p99, and reads Redis' own count of commands to report round
# trips per batch.
#
#   bench/epoch-cache/run.sh            # or: make bench-epoch-cache
# Settings (env): ROUNDS (4), SECONDS_PER_ROUND (8), CONNECTIONS (8), RELAY_BIN
# (target/release/meshray-relay), BENCH_TRACES / BENCH_DOCS_PER_TRACE / BENCH_CARRIED
# (see batches.lua). Output: one line per round and a Markdown summary on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
relay_bin=${RELAY_BIN:-$root/target/release/meshray-relay}
rounds=${ROUNDS:-4}
secs=${SECONDS_PER_ROUND:-8}
connections=${CONNECTIONS:-8}
work=$(mktemp -d /tmp/meshray-bench-epoch-cache.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run make tools" >&2; exit 1; }
done
[ -x "$relay_bin" ] || { echo "no $relay_bin: cargo build --release -p meshray-relay" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
taskset -c 0 redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)
evalsha_calls() {
  redis-cli -p "$redis_port" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p' | { read -r n || true; echo "${n:-0}"; }
}

traces=${BENCH_TRACES:-10}
per_trace=${BENCH_DOCS_PER_TRACE:-5}
batch=$((traces * per_trace))
foreign_share=$(( (traces + 1) / 2 ))
echo "batch: $batch documents ($traces traces x $per_trace; $foreign_share foreign traces), $connections connections, ${secs}s rounds" >&2

results=()
for round in $(seq "$rounds"); do
  for cache in memory redis; do
    port=$(free_port)
    url=memory
    [ "$cache" = redis ] && url="redis://127.0.0.1:$redis_port"
    MESHRAY_EPOCH_CACHE=$url RUST_LOG=warn taskset -c 1 "$relay_bin" --listen "127.0.0.1:$port" \
      --sink file:/dev/null --daemon-listen off --queue-capacity 1000000 \
      --max-connections 64 >"$work/relay-$cache-$round.log" 2>&1 &
    relay=$!
    pids+=($relay)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
    before=$(evalsha_calls)
    cpu_before=$(cpu_ticks "$relay")
    out=$(BENCH_TRACES=$traces BENCH_DOCS_PER_TRACE=$per_trace taskset -c 0 wrk -t1 -c"$connections" \
      -d"${secs}s" --latency -s "$here/batches.lua" "http://127.0.0.1:$port" 2>"$work/wrk-err.log")
    after=$(evalsha_calls)
    cpu_after=$(cpu_ticks "$relay")
    metrics=$(curl -fs "http://127.0.0.1:$port/metrics")
    kill -TERM "$relay"; wait "$relay" 2>/dev/null || true
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    fallback=$(awk '/^meshray_relay_epoch_cache_fallback_total/ {print $2}' <<<"$metrics")
    accepted=$(awk '/^meshray_relay_documents_accepted_total/ {print $2}' <<<"$metrics")
    docs_per_sec=$(awk -v r="$rps" -v b="$batch" 'BEGIN {printf "%.0f", r * b}')
    docs_per_cpu_s=$(awk -v n="$accepted" -v a="$cpu_after" -v b="$cpu_before" -v t="$ticks_per_sec" \
      'BEGIN {printf "%.0f", ((a - b) > 0 ? n * t / (a - b) : 0)}')
    # Batches the relay received (wrk's count misses those in flight when it stops).
    batches=$(awk -v n="$(awk '/^meshray_relay_documents_received_total/ {print $2}' <<<"$metrics")" \
      -v b="$batch" 'BEGIN {printf "%d", n / b}')
    trips=$(awk -v a="$after" -v b="$before" -v n="$batches" 'BEGIN {printf "%.3f", (n ? (a - b) / n : 0)}')
    echo "round $round $cache: ${rps} batches/s = ${docs_per_sec} docs/s, ${docs_per_cpu_s} docs per relay CPU-s, p99 ${p99}, requests $requests, accepted ${accepted:-0}, non-2xx ${non2xx:-0}, fallback ${fallback:-0}, redis round trips/batch $trips" >&2
    results+=("$round $cache $rps $docs_per_sec $p99 $trips ${non2xx:-0} ${fallback:-0} $docs_per_cpu_s")
  done
done

printf '%s\n' "${results[@]}" | awk -v batch="$batch" '
  $2 == "memory" { m[$1] = $3; mc[$1] = $9; mp[$1] = $5 }
  $2 == "redis" { r[$1] = $3; rc[$1] = $9; rp[$1] = $5; trips = trips " " $6; fallback += $8 }
  { non2xx += $7 }
  END {
    print "| round | memory: batches/s | redis: batches/s | redis / memory | memory: docs per relay CPU-s | redis: docs per relay CPU-s | redis / memory | p99 memory / redis |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i in m; i++) {
      printf "| %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %s / %s |\n", i, m[i], r[i], r[i] / m[i], mc[i], rc[i], (mc[i] ? rc[i] / mc[i] : 0), mp[i], rp[i]
      sum += r[i] / m[i]; csum += (mc[i] ? rc[i] / mc[i] : 0); k++
    }
    printf "\nmean redis/memory: throughput %.2f, documents per relay CPU-second %.2f (batch of %d documents);", sum / k, csum / k, batch
    printf " redis round trips per batch:%s; non-2xx responses: %d; fallback: %d\n", trips, non2xx, fallback
  }'
