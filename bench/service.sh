#!/usr/bin/env bash
# The service benchmarks, end to end, ending with a verdict table (bench/verdict.py; exit 1 on a miss).
# Starts `bentoml serve` (default topology) on a loopback port with a throw-away users file, jobs
# database and JWT secret, and the raw Starlette yardstick (bench/raw_app.py) beside it, then loads
# them one at a time from separate processes (wrk, hey, python), a valid token on every request:
#   /predict, 10 clients, wrk, the service and then the raw app   targets: >= 0.6x the raw app; p99 <= 10 ms
#   /predict, 64 clients (wrk)                                     target: zero failed requests
#   /predict_batch, 10,000-row JSON batches, 4 clients (hey)       target: >= 300,000 rows/s
#   /predict_batch, 100,000-row CSV batches, 2 clients (hey)       target: >= 1,000,000 rows/s
#     (both with a connection per request: see the comment where they run)
#   a 1,000,000-row CSV job: submitted, completed, downloaded      target: <= 3 s
#   a 100,000-row JSON job: submitted to completed                 target: <= 10 s
#   the prediction log's cost: a second server with ADMISSIONS_PREDICTION_LOG=off, /predict (10 clients)
#   on both, one after the other                                   target: log on >= 0.9x log off
#   and the 1M-row CSV job on it                                   target: log on <= 2x the time of log off
# Usage: bench/service.sh   (env: BENCH_PORT=3399, PY=.tox/dev/bin/python, SECONDS_SHORT=20, SECONDS_LONG=30)
#        bench/service.sh --check   only checks that the load tools are installed
set -euo pipefail
# The load tools, checked before anything starts, in one sentence that says how to install them.
missing=$(for tool in wrk hey; do command -v "$tool" >/dev/null || printf ' %s' "$tool"; done)
if [ -n "$missing" ]; then
  echo "error: the service benchmark needs the load tools wrk and hey (missing here:$missing): install them with \`sudo apt-get install -y wrk hey\` (both are Debian packages)" >&2
  exit 2
fi
if [ "${1:-}" = "--check" ]; then echo "wrk and hey are installed"; exit 0; fi
cd "$(dirname "$0")/.."
PY=${PY:-.tox/dev/bin/python}
port=${BENCH_PORT:-3399}
raw_port=$((port - 1))
short=${SECONDS_SHORT:-20}
url="http://127.0.0.1:$port"
work=$(mktemp -d -t admissions-bench-XXXXXX)
out=$work/out
mkdir -p "$out"
password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
JWT_SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')
export JWT_SECRET_KEY ADMISSIONS_USERS_FILE=$work/users.json ADMISSIONS_JOBS_DB=$work/jobs.sqlite BENTOML_DO_NOT_TRACK=true
export ADMISSIONS_MAX_CSV_JOB_SIZE=1000000  # the 1M-row job target; the default (400,000) fits a 768 MB container
echo "$password" | "$PY" -m service.users add bench >/dev/null

setsid "$PY" -m bentoml serve service.api:AdmissionsAPI --host 127.0.0.1 --port "$port" >"$work/serve.log" 2>&1 &
server=$!
setsid "$PY" bench/raw_app.py --port "$raw_port" >"$work/raw.log" 2>&1 &
raw=$!
trap 'kill -TERM -- -$server -$raw 2>/dev/null || true; wait $server $raw 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$url/readyz" >/dev/null || { echo "error: server not ready; log:" >&2; tail -30 "$work/serve.log" >&2; exit 1; }
TOKEN=$(curl -sf "$url/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$password\"}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export TOKEN
auth="Authorization: Bearer $TOKEN"
"$PY" - "$work" <<'EOF'
import sys
sys.path.insert(0, "bench")
from batch_throughput import applicants, body_of
work = sys.argv[1]
open(f"{work}/batch.json", "wb").write(body_of(applicants(10_000), csv=False))
open(f"{work}/batch.csv", "wb").write(body_of(applicants(100_000), csv=True))
EOF
echo 10000 >"$out/batch_json.rows"
echo 100000 >"$out/batch_csv.rows"
show() { tee "$1" | { grep -E "RESULT|Requests/sec|99% in|responses|Error|^job" || true; } | tr -s ' \t' ' ' | paste -sd' '; }

echo "# $(date -u +%FT%TZ) $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$raw_port/predict" && break; sleep 0.5; done
bench/load_predict.sh "$url" 10 5 >/dev/null  # warm-up, not reported
bench/load_predict.sh "http://127.0.0.1:$raw_port" 10 5 >/dev/null
echo "## /predict, 10 clients, wrk: the service";  bench/load_predict.sh "$url" 10 "$short" | show "$out/predict_api.wrk"
echo "## /predict, 10 clients, wrk: the raw app";  bench/load_predict.sh "http://127.0.0.1:$raw_port" 10 "$short" | show "$out/predict_raw.wrk"
kill -TERM -- -$raw 2>/dev/null || true  # the yardstick is done: it must not share the cores from here on
echo "## /predict, 64 clients, wrk";               bench/load_predict.sh "$url" 64 "${SECONDS_LONG:-30}" | show "$out/predict_64.wrk"
# A keep-alive connection stays with the API worker that accepted it, and a few connections opened at
# once are often all accepted by one worker: batches then use one core of two. A connection per
# request (a cost of ~0.1 ms against 25-100 ms batches) lets each request go to an idle worker.
batch() { hey -z "$1" -c "$2" -disable-keepalive -m POST -T "$3" -H "$auth" -D "$4" "$url/predict_batch"; }
batch 5s 4 application/json "$work/batch.json" >/dev/null  # warm-up
echo "## /predict_batch, 10,000-row JSON batches, 4 clients, hey, a connection per request"
batch "${short}s" 4 application/json "$work/batch.json" | show "$out/batch_json.hey"
echo "## /predict_batch, 100,000-row CSV batches, 2 clients, hey, a connection per request"
batch "${short}s" 2 text/csv "$work/batch.csv" | show "$out/batch_csv.hey"
echo "## a 1,000,000-row CSV job";  "$PY" bench/batch_throughput.py --url "$url" --seconds 0 --job-rows 1000000 --csv | show "$out/job_csv.job"
echo "## a 100,000-row JSON job";   "$PY" bench/batch_throughput.py --url "$url" --seconds 0 --job-rows 100000 | show "$out/job_json.job"
# The prediction log's cost (docs/monitoring.md): the same service with the log off, in the same run.
off_port=$((port + 2))
ADMISSIONS_PREDICTION_LOG=off ADMISSIONS_JOBS_DB=$work/jobs-off.sqlite \
  setsid "$PY" -m bentoml serve service.api:AdmissionsAPI --host 127.0.0.1 --port "$off_port" >"$work/serve-off.log" 2>&1 &
off=$!
trap 'kill -TERM -- -$server -$raw -$off 2>/dev/null || true; wait $server $raw $off 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$off_port/readyz" >/dev/null && break; sleep 0.5; done
bench/load_predict.sh "http://127.0.0.1:$off_port" 10 5 >/dev/null  # warm-up
echo "## /predict, 10 clients, wrk: the log off";  bench/load_predict.sh "http://127.0.0.1:$off_port" 10 "$short" | show "$out/predict_log_off.wrk"
echo "## /predict, 10 clients, wrk: the log on";   bench/load_predict.sh "$url" 10 "$short" | show "$out/predict_log_on.wrk"
echo "## a 1,000,000-row CSV job: the log off"
"$PY" bench/batch_throughput.py --url "http://127.0.0.1:$off_port" --seconds 0 --job-rows 1000000 --csv | show "$out/job_csv_log_off.job"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/verdict.py "$out"
