# bench/memory.sh - the memory scenario of make bench (sourced by run.sh).
#
# A bridge with --max-memory MEM_BOUND and --client-queue 1M serves replays
# of MEM_EVENTS events of 1 MB (published before it starts, so they come
# from the log, not the replay cache):
#   phase "replay":  MEM_SLOW slow readers (10 kB/s, 4 kB receive buffers)
#                    and 4 fast readers that must receive every event;
#   phase "shed":    MEM_SHED_SLOW more slow readers on top, enough to pass
#                    the bound: the bridge must refuse opens (503) and drop
#                    its largest slow consumers instead of growing.
# Each phase records the bridge's peak RSS (VmHWM) against the bound, the
# fast readers' time and completeness, and the shedding counters.

if [ "$QUICK" = 1 ]; then
  MEM_EVENTS=${MEM_EVENTS:-100}; MEM_SLOW=${MEM_SLOW:-50}; MEM_SHED_SLOW=${MEM_SHED_SLOW:-300}; MEM_SECONDS=15
else
  MEM_EVENTS=${MEM_EVENTS:-300}; MEM_SLOW=${MEM_SLOW:-100}; MEM_SHED_SLOW=${MEM_SHED_SLOW:-400}; MEM_SECONDS=30
fi
MEM_BOUND_MB=${MEM_BOUND_MB:-256}

mem_phase() {   # mem_phase NAME SLOW_CLIENTS
  local name=$1 nslow=$2 head fast slow hwm m
  head=$(psql -qXtAc "SELECT max(id) FROM sse_bridge.events")
  start_bridge --max-memory "${MEM_BOUND_MB}M" --client-queue 1M || return 1
  "$B/slowread" --port "$BPORT" --path '/events?channel=bench.mem' --clients "$nslow" --rate 10240 \
    --rcvbuf 4096 --seconds "$MEM_SECONDS" --last-event-id "$MEM_FROM" --stagger 10 \
    --pid "$BRIDGE_PID" >"$WORK/mem-$name-slow.json" &
  local sp=$!
  "$B/slowread" --port "$BPORT" --path '/events?channel=bench.mem' --clients 4 --rate 200000000 \
    --rcvbuf 262144 --seconds "$((MEM_SECONDS * 3))" --last-event-id "$MEM_FROM" --until "$head" \
    >"$WORK/mem-$name-fast.json"
  wait "$sp" || true
  m=$(metrics)
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$BRIDGE_PID/status")
  stop_bridge
  fast=$(json_or_null "$WORK/mem-$name-fast.json")
  slow=$(json_or_null "$WORK/mem-$name-slow.json")
  log "memory/$name: peak RSS $((hwm / 1024)) MB against --max-memory ${MEM_BOUND_MB} MB; fast: $fast"
  record memory bridge "phase=\"$name\"" "slow_clients=$nslow" "events=$((head - MEM_FROM))" \
    "bound_kb=$((MEM_BOUND_MB * 1024))" "hwm_kb=${hwm:-null}" "fast=$fast" "slow=$slow" "metrics=$m"
}

scenario_memory() {
  has_target bridge || return 0
  log "memory: publishing $MEM_EVENTS events of 1 MB"
  stop_bridge
  MEM_FROM=$(psql -qXtAc "SELECT coalesce(max(id), 0) FROM sse_bridge.events")
  psql -qXc "SELECT count(sse_publish('bench.mem', repeat('m', 1000000))) FROM generate_series(1, $MEM_EVENTS)" >/dev/null
  mem_phase replay "$MEM_SLOW"
  mem_phase shed "$((MEM_SLOW + MEM_SHED_SLOW))"
}
