#!/usr/bin/env bash
# tests/examples_cli.sh: the network examples as users run them. Starts the
# built weft-http and weft-echo on free loopback ports and drives them with
# real clients: curl (GET, HEAD, /delay, keep-alive reuse, HTTP/1.0), ab
# (with and without keep-alive), wrk (plain and 16-deep pipelining), and
# weft-fetch itself; checks the servers' fds return to their count before
# the load; then stops them with SIGTERM/SIGINT while a request is in flight
# and checks it is answered and the server exits 0.
#
#   tests/examples_cli.sh WEFT_HTTP WEFT_ECHO WEFT_FETCH
#
# Registered with ctest (tests/CMakeLists.txt). Exits 0 when all pass, 1 on
# the first failure, 77 (skipped) if curl, ab or wrk is not installed
# (tools/install-deps installs them).
set -uo pipefail

http=$1 echo_bin=$2 fetch=$3
for tool in curl ab wrk; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "examples_cli: $tool is not installed (tools/install-deps): skipped"
    exit 77
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "examples_cli: FAILED: $*" >&2
  for f in "$work"/*.err; do
    [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
ok() { echo "examples_cli: ok: $*"; }

# start NAME CMD...: run a server, wait for its "listening on" line, and
# set $pid and $port.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do
    if grep -q "listening on" "$work/$name.out" 2>/dev/null; then
      port=$(sed -nE 's/.*listening on [^ ]*:([0-9]+).*/\1/p' "$work/$name.out")
      [ -n "$port" ] && return 0
    fi
    kill -0 "$pid" 2>/dev/null || fail "$name exited at start"
    sleep 0.05
  done
  fail "$name did not start listening"
}

fds_of() { ls "/proc/$1/fd" | wc -l; }

# wait_fds PID N: the process's fds come back to N (connections closing
# take a moment after the clients go).
wait_fds() {
  local now
  for _ in $(seq 100); do
    now=$(fds_of "$1")
    [ "$now" -eq "$2" ] && return 0
    sleep 0.05
  done
  fail "fds of $1: $now, were $2 before the load"
}

# stop PID SIGNAL NAME: the server exits 0 within 20 s.
stop() {
  kill -"$2" "$1"
  for _ in $(seq 400); do
    if ! kill -0 "$1" 2>/dev/null; then
      wait "$1"
      local rc=$?
      [ $rc -eq 0 ] || fail "$3 exited $rc after SIG$2"
      return 0
    fi
    sleep 0.05
  done
  fail "$3 did not exit after SIG$2"
}

c() { timeout 30 curl -sS --max-time 20 "$@"; }

# ---- weft-http ----------------------------------------------------------------
start http "$http" --port 0 --workers 2 --idle-timeout 3000
base=http://127.0.0.1:$port
fds0=$(fds_of "$pid")

[ "$(c $base/)" = "Hello, World!" ] || fail "GET / body"
c -D "$work/h" -o /dev/null $base/ || fail "GET / headers"
grep -qi "^content-type: text/plain" "$work/h" || fail "Content-Type"
grep -qi "^content-length: 13" "$work/h" || fail "Content-Length"
grep -qi "^date: " "$work/h" || fail "Date"
[ "$(c -o /dev/null -w '%{http_code}' $base/missing)" = 404 ] || fail "404"
[ "$(c -o /dev/null -w '%{http_code}' -X POST $base/)" = 405 ] || fail "405"
[ "$(c -I -w '%{http_code}' -o /dev/null $base/)" = 200 ] || fail "HEAD status"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
reply=$(timeout 10 cat <&3)
exec 3>&-
grep -qi "^content-length: 13" <<<"$reply" || fail "HEAD: $reply"
grep -q "Hello" <<<"$reply" && fail "HEAD answered with a body"
[ "$(c --http1.0 $base/)" = "Hello, World!" ] || fail "HTTP/1.0"
t=$(c -o /dev/null -w '%{time_total}' "$base/delay?ms=200") || fail "/delay"
awk -v t="$t" 'BEGIN { exit !(t >= 0.2) }' || fail "/delay answered after $t s"
# Two URLs in one curl: the second goes over the same connection.
c -v $base/ $base/ -o /dev/null -o /dev/null 2>"$work/v" || fail "two GETs"
grep -q "Re-using existing connection" "$work/v" || fail "no keep-alive reuse"
# A malformed request: 400 and the close.
printf 'GET / HTTP/1.1\r\nHost : x\r\n\r\n' >"$work/bad"
exec 3<>"/dev/tcp/127.0.0.1/$port"
cat "$work/bad" >&3
reply=$(timeout 10 cat <&3)
exec 3>&-
grep -q "^HTTP/1.1 400 Bad Request" <<<"$reply" || fail "malformed: $reply"
grep -qi "^connection: close" <<<"$reply" || fail "400 without close"
ok "curl: GET, HEAD, 404, 405, HTTP/1.0, /delay, keep-alive, 400"

timeout 60 ab -q -n 2000 -c 20 -k $base/ >"$work/ab" 2>&1 || fail "ab -k: $(tail -3 "$work/ab")"
grep -qE "^Complete requests: +2000" "$work/ab" || fail "ab -k complete"
grep -qE "^Failed requests: +0" "$work/ab" || fail "ab -k failed requests"
grep -qE "^Keep-Alive requests: +2000" "$work/ab" || fail "ab -k did not keep alive"
timeout 60 ab -q -n 500 -c 10 $base/ >"$work/ab" 2>&1 || fail "ab: $(tail -3 "$work/ab")"
grep -qE "^Failed requests: +0" "$work/ab" || fail "ab failed requests"
ok "ab: 2000 keep-alive requests and 500 without, none failed"

timeout 60 wrk -t1 -c50 -d1s $base/ >"$work/wrk" 2>&1 || fail "wrk"
grep -q "requests in" "$work/wrk" || fail "wrk ran no requests"
grep -q "Non-2xx" "$work/wrk" && fail "wrk: non-2xx answers"
grep -q "Socket errors" "$work/wrk" && fail "wrk: $(grep 'Socket errors' "$work/wrk")"
cat >"$work/pipeline.lua" <<'EOF'
-- 16 requests per round trip
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
EOF
timeout 60 wrk -t1 -c20 -d1s -s "$work/pipeline.lua" $base/ >"$work/wrk" 2>&1 || fail "wrk pipelined"
grep -q "requests in" "$work/wrk" || fail "wrk pipelined ran no requests"
grep -q "Non-2xx" "$work/wrk" && fail "wrk pipelined: non-2xx answers"
grep -q "Socket errors" "$work/wrk" && fail "wrk pipelined: $(grep 'Socket errors' "$work/wrk")"
ok "wrk: plain and 16-deep pipelining, no errors"

# ---- weft-fetch against it -------------------------------------------------------
out=$(timeout 60 "$fetch" --count 50 --concurrency 50 "$base/delay?ms=100") ||
  fail "weft-fetch: $out"
grep -q "50 succeeded, 0 failed" <<<"$out" || fail "weft-fetch: $out"
out=$(timeout 60 "$fetch" --count 3 --concurrency 1 "$base/" "$base/delay?ms=10") ||
  fail "weft-fetch serial: $out"
grep -q "6 succeeded, 0 failed" <<<"$out" || fail "weft-fetch serial: $out"
"$fetch" https://127.0.0.1/ >/dev/null 2>&1; [ $? -eq 2 ] || fail "https accepted"
"$fetch" --count 0 $base/ >/dev/null 2>&1; [ $? -eq 2 ] || fail "--count 0 accepted"
"$fetch" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no URL accepted"
out=$(timeout 60 "$fetch" --count 2 "$base/missing" 2>/dev/null); rc=$?
[ $rc -eq 1 ] && grep -q "0 succeeded, 2 failed" <<<"$out" || fail "404s counted as $out ($rc)"
ok "weft-fetch: concurrent, serial, failures, bad usage"

wait_fds "$pid" "$fds0"
ok "weft-http: back to $fds0 fds after the load"

# ---- Graceful stop: a request in flight is answered ----------------------------------
timeout 30 curl -sS --max-time 20 "$base/delay?ms=1500" >"$work/slow" 2>"$work/slow.err" &
slow=$!
sleep 0.5
stop "$pid" TERM weft-http
wait $slow || fail "the request in flight failed: $(cat "$work/slow.err")"
[ "$(cat "$work/slow")" = "Hello, World!" ] || fail "the request in flight got '$(cat "$work/slow")'"
grep -q "stopped after" "$work/http.err" || fail "weft-http said nothing at its stop"
c -o /dev/null $base/ 2>/dev/null && fail "weft-http still answers after its stop"
ok "weft-http: SIGTERM answers the request in flight and exits 0"

"$http" --port 99999 >/dev/null 2>&1; [ $? -eq 2 ] || fail "weft-http --port 99999 accepted"
"$http" --host not-an-ip >/dev/null 2>&1; [ $? -eq 2 ] || fail "weft-http --host accepted a name"

# ---- weft-echo -------------------------------------------------------------------------
start echo "$echo_bin" --port 0 --workers 2
fds0=$(fds_of "$pid")
for i in 1 2 3; do
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  msg="hello $i $(head -c 3000 /dev/zero | tr '\0' x)"
  printf '%s' "$msg" >&3
  IFS= read -r -N ${#msg} -t 10 reply <&3 || fail "echo: no reply"
  exec 3>&-
  [ "$reply" = "$msg" ] || fail "echo: got ${#reply} bytes back"
done
wait_fds "$pid" "$fds0"
exec 3<>"/dev/tcp/127.0.0.1/$port" # left open: the stop must close it
stop "$pid" INT weft-echo
timeout 10 cat <&3 >/dev/null || fail "the open echo connection was not closed"
exec 3>&-
ok "weft-echo: echoes, keeps no fds, SIGINT closes and exits 0"
echo "examples_cli: all passed"
