#!/usr/bin/env bash
# The service benchmarks, end to end: start `bentoml serve` (default topology) on a loopback port with a
# throw-away users file, jobs database and JWT secret, then load it from separate processes (wrk, hey,
# python), a valid token on every request:
#   /predict, 10 clients: closed loop with wrk and with hey, and hey offering 600 req/s
#                                              target: >= 500 req/s with p99 <= 50 ms
#   /predict, 64 clients for 60 s (wrk)        target: zero failed requests
#   /predict_batch, 1,000 rows, 6 clients (hey) target: >= 100,000 rows/s
#   one 100,000-row job (python)               target: completed <= 10 s after submission
# Usage: bench/service.sh   (env: BENCH_PORT=3399, PY=.tox/dev/bin/python, SECONDS_SHORT=30, SECONDS_LONG=60)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.tox/dev/bin/python}
port=${BENCH_PORT:-3399}
short=${SECONDS_SHORT:-30}
url="http://127.0.0.1:$port"
for tool in wrk hey; do
  command -v $tool >/dev/null || { echo "error: $tool not found (Debian: apt-get install -y wrk hey)" >&2; exit 2; }
done
work=$(mktemp -d -t admissions-bench-XXXXXX)
password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
JWT_SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')
export JWT_SECRET_KEY ADMISSIONS_USERS_FILE=$work/users.json ADMISSIONS_JOBS_DB=$work/jobs.sqlite BENTOML_DO_NOT_TRACK=true
echo "$password" | "$PY" -m service.users add bench >/dev/null

setsid "$PY" -m bentoml serve service.api:AdmissionsAPI --host 127.0.0.1 --port "$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill -TERM -- -$server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$url/readyz" >/dev/null || { echo "error: server not ready; log:" >&2; tail -30 "$work/serve.log" >&2; exit 1; }
TOKEN=$(curl -sf "$url/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$password\"}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export TOKEN
auth="Authorization: Bearer $TOKEN"
one='{"gre_score":320,"toefl_score":110,"university_rating":4,"sop":4.5,"lor":4.0,"cgpa":9.1,"research":1}'
"$PY" -c 'import json, sys; sys.path.insert(0, "bench"); from batch_throughput import applicants
print(json.dumps({"applicants": applicants(1000)}))' >"$work/batch1000.json"
hey_summary() { grep -E "Requests/sec|  50% in|  99% in|^  \[[0-9]+\]\s+[0-9]+ responses|Error distribution" | tr -s ' \t' ' ' | paste -sd' '; }

echo "# $(date -u +%FT%TZ) $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
bench/load_predict.sh "$url" 10 5 >/dev/null  # warm-up, not reported
echo "## /predict, 10 clients, closed loop, wrk";   bench/load_predict.sh "$url" 10 "$short" | grep RESULT
echo "## /predict, 10 clients, closed loop, hey";   hey -z "${short}s" -c 10 -m POST -T application/json -H "$auth" -d "$one" "$url/predict" | hey_summary
echo "## /predict, 10 clients offering 600 req/s, hey"
hey -z "${short}s" -c 10 -q 60 -m POST -T application/json -H "$auth" -d "$one" "$url/predict" | hey_summary
echo "## /predict, 64 clients, wrk";                bench/load_predict.sh "$url" 64 "${SECONDS_LONG:-60}" | grep RESULT
hey -z 5s -c 6 -m POST -T application/json -H "$auth" -D "$work/batch1000.json" "$url/predict_batch" >/dev/null  # warm-up
echo "## /predict_batch, 1,000 rows, 6 clients, hey (rows/s = 1,000 x req/s)"
hey -z "${short}s" -c 6 -m POST -T application/json -H "$auth" -D "$work/batch1000.json" "$url/predict_batch" | hey_summary
echo "## a 100,000-row job";                          "$PY" bench/batch_throughput.py --url "$url" --seconds 0 --job-rows 100000
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
