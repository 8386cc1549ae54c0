#!/usr/bin/env bash
# The latency deploy/nginx.conf adds: nginx (TLS, HTTP/2) in front of a
# running bridge, one stream straight to the bridge and one through nginx,
# EVENTS events published one by one; per event, the arrival through nginx
# minus the direct arrival. Prints one JSON line.
#
#   BRIDGE_PORT=N bench/proxy.sh     (PGHOST etc.: the bridge's database;
#                                     the bridge must serve bench.# ad hoc)
#   EVENTS=500 INTERVAL_MS=10        how many, how far apart
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BRIDGE_PORT:?set BRIDGE_PORT to the port of a running bridge}"
work=$(mktemp -d /tmp/sse_proxy.XXXXXX)
nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/tmp"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
sed "s/127\.0\.0\.1:8080/127.0.0.1:$BRIDGE_PORT/" deploy/nginx.conf >"$work/sse-bridge.conf"
port=$(scripts/free-port.sh 1)
t=$work/tmp
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $t; proxy_temp_path $t; fastcgi_temp_path $t; uwsgi_temp_path $t; scgi_temp_path $t;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    include $work/sse-bridge.conf;
  }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off; user root;' 2>>"$work/error.log" &
nginx_pid=$!
for _ in $(seq 1 50); do
  curl -sk -o /dev/null "https://127.0.0.1:$port/sse-bridge.d.ts" && break
  sleep 0.1
done
node bench/proxy-latency.mjs "http://127.0.0.1:$BRIDGE_PORT" "https://127.0.0.1:$port" \
  "${EVENTS:-500}" "${INTERVAL_MS:-10}"
