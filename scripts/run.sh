#!/usr/bin/env bash
# `make run`: the demo. On a fresh Debian machine as root it installs what is
# missing, builds and installs the extension and the bridge, then starts:
#   - a throwaway PostgreSQL cluster with the extension,
#   - a sample `jobs` table published through sse_notify_trigger('job.{name}'),
#   - a publisher that moves jobs through their states every second,
#   - the bridge on 127.0.0.1:8080 with the job channels public,
# prints the URL of the demo page (served by the bridge with --demo on), and
# stops everything on Ctrl-C.
#
#   SSE_RUN_LISTEN=HOST:PORT     where the bridge listens (127.0.0.1:8080)
#   SSE_RUN_SECONDS=N            stop by itself after N seconds of running
#   SSE_RUN_CORS_ORIGIN=ORIGIN   let a page on ORIGIN connect (--cors-origin)
#   SSE_RUN_SKIP_BUILD=1         skip deps.sh and the build (already installed)
set -euo pipefail
cd "$(dirname "$0")/.."

listen=${SSE_RUN_LISTEN:-127.0.0.1:8080}
seconds=${SSE_RUN_SECONDS:-}
bridge_pid=
publisher_pid=
SSE_PGDIR=

log() { printf '[make run] %s\n' "$*" >&2; }

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$publisher_pid" ]; then kill "$publisher_pid" 2>/dev/null || true; wait "$publisher_pid" 2>/dev/null || true; fi
  if [ -n "$bridge_pid" ]; then
    kill -TERM "$bridge_pid" 2>/dev/null || true
    wait "$bridge_pid" 2>/dev/null || true
  fi
  if [ -n "$SSE_PGDIR" ]; then scripts/pgcluster.sh stop "$SSE_PGDIR" || true; fi
  log "stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# What `make install` puts into the system (shared by every checkout and
# cluster on this machine), named in what the demo prints.
pgc=${PG_CONFIG:-pg_config}
installed="$($pgc --pkglibdir)/sse_bridge.so, $($pgc --sharedir)/extension/sse_bridge*, ${BRIDGE_BINDIR:-/usr/local/bin}/sse-bridge"
if [ "${SSE_RUN_SKIP_BUILD:-0}" != 1 ]; then
  scripts/deps.sh
  log "building"
  make -s -j2
  log "installing system-wide (make install): $installed"
  make -s install >/dev/null
  install_note="make run installed, system-wide: $installed"
else
  install_note="SSE_RUN_SKIP_BUILD=1: using what is installed system-wide: $installed"
fi
[ -x bridge/sse-bridge ] || { log "bridge/sse-bridge is missing; run make"; exit 1; }

log "starting a throwaway cluster"
# pgcluster.sh picks a free port; another process may take it first: retry
for attempt in 1 2 3; do
  if env_lines=$(scripts/pgcluster.sh start); then break; fi
  [ "$attempt" -lt 3 ] || { log "cannot start a cluster"; exit 1; }
  log "cluster start failed; retrying"
done
eval "$env_lines"
export PGHOST PGPORT PGUSER PGDATABASE
log "cluster: $SSE_PGDIR (port $PGPORT, database $PGDATABASE)"

psql -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION sse_bridge;
CREATE TABLE jobs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    state       text NOT NULL DEFAULT 'queued',   -- queued, running, done, failed
    progress    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
-- every change to a job is published on job.<name>, named insert/update/delete
CREATE TRIGGER jobs_sse AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION sse_notify_trigger('job.{name}');
INSERT INTO jobs (name) VALUES ('report-1'), ('backup-2'), ('import-3');
SQL

# One tick of the publisher: each statement (or BEGIN ... COMMIT) is its own
# transaction.
tick_sql=$(cat <<'SQL'
-- finish, then close: the trigger's update event must come before close
-- (row triggers of a data-modifying CTE fire after the whole statement)
BEGIN;
UPDATE jobs SET state = CASE WHEN random() < 0.15 THEN 'failed' ELSE 'done' END, finished_at = now()
 WHERE state = 'running' AND progress >= 100;
SELECT sse_close('job.' || name) FROM jobs WHERE finished_at = now();
COMMIT;
UPDATE jobs SET progress = least(100, progress + 10 + (random() * 20)::int) WHERE state = 'running';
UPDATE jobs SET state = 'running', started_at = now()
 WHERE id = (SELECT min(id) FROM jobs WHERE state = 'queued')
   AND (SELECT count(*) FROM jobs WHERE state = 'running') < 2;
INSERT INTO jobs (name)
SELECT (ARRAY['report', 'backup', 'import', 'resize'])[1 + (random() * 3)::int]
       || '-' || (SELECT coalesce(max(id), 0) + 1 FROM jobs)
 WHERE (SELECT count(*) FROM jobs WHERE state = 'queued') < 2;
SQL
)

bridge_args=(--db "host=$PGHOST port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
             --listen "$listen" --public-channels 'job.#' --demo on)
[ -n "${SSE_RUN_CORS_ORIGIN:-}" ] && bridge_args+=(--cors-origin "$SSE_RUN_CORS_ORIGIN")
# the demo's own settings only, not an installed /etc/sse-bridge/sse-bridge.conf
bridge/sse-bridge --config "" "${bridge_args[@]}" &
bridge_pid=$!

deadline=$((SECONDS + 20))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$listen/healthz" || true)" = 200 ]; do
  if ! kill -0 "$bridge_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    log "the bridge did not start on $listen"; exit 1
  fi
  sleep 0.2
done

(
  trap 'exit 0' TERM
  while :; do
    # through stdin, not -c, so that every statement commits on its own
    psql -XAtq -v ON_ERROR_STOP=1 <<<"$tick_sql" >/dev/null || true
    sleep 1
  done
) &
publisher_pid=$!

cors_note=
[ -n "${SSE_RUN_CORS_ORIGIN:-}" ] && cors_note="
  Pages on $SSE_RUN_CORS_ORIGIN may read the streams (--cors-origin)."
cat <<EOF

  sse_bridge demo: open http://$listen/

  The page shows the jobs table live, through the browser helper
  /sse-bridge.js, with its connection state (README.md: the same stream
  with curl, and your own table streaming to your own page).
  The demo database, for psql in another terminal (paste this line first):
    export PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE
  Add a job and see it appear:
    psql -c "INSERT INTO jobs (name) VALUES ('my-job')"$cors_note

  $install_note
  The cluster is throwaway. Ctrl-C stops the bridge, the publisher and the
  cluster.

EOF

if [ -n "$seconds" ]; then
  # a bounded run (for tests and scripted demos): the bridge may not exit first
  end=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$end" ] && kill -0 "$bridge_pid" 2>/dev/null; do sleep 0.5; done
  kill -0 "$bridge_pid" 2>/dev/null || { log "the bridge exited"; exit 1; }
  log "SSE_RUN_SECONDS=$seconds elapsed"
else
  wait "$bridge_pid" || true
  log "the bridge exited"
fi
