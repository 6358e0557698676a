#!/usr/bin/env bash
# The split topology's cost: /predict on the compose stack (API container -> single container over
# HTTP, 1 CPU each) against the in-process topology (`bentoml serve` here, the single model in each API
# worker), measured in the same run, ending with a verdict table (bench/verdict.py --compose; exit 1
# on a miss). Targets (issue 18):
#   compose /predict req/s >= 0.4x in-process, 10 clients (wrk, SECONDS_SHORT each, ROUNDS rounds, alternated)
#   compose /predict p99 <= 15 ms, 10 clients
#   zero failed requests at 64 and 256 clients (wrk, SECONDS_LONG)
# Both serve the model of the image (copied from it into a temporary BENTOML_HOME), with a throw-away
# secret, users file and jobs; the stack runs under a project name and loopback port of its own and is
# removed with its volumes at the end. Informational lines: the stack reached at the API container's
# own address (no docker-proxy), and CPU per request by container (bench/compose_cost.py).
# Usage: bench/compose.sh   (env: DOCKER_IMAGE=admissions_api:latest, PY=.tox/dev/bin/python,
#        SECONDS_SHORT=10, SECONDS_LONG=20, ROUNDS=2)
set -euo pipefail
command -v wrk >/dev/null || { echo "error: the compose benchmark needs wrk: install it with \`sudo apt-get install -y wrk\`" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "error: no container engine is reachable (docker info failed)" >&2; exit 2; }
cd "$(dirname "$0")/.."
PY=${PY:-.tox/dev/bin/python}
image=${DOCKER_IMAGE:-admissions_api:latest}
docker image inspect "$image" >/dev/null 2>&1 || { echo "error: the image $image is not in the Docker engine: run make build-docker first (or set DOCKER_IMAGE)" >&2; exit 2; }
short=${SECONDS_SHORT:-10}
long=${SECONDS_LONG:-20}
rounds=${ROUNDS:-2}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
compose_port=$(free_port)
work=$(mktemp -d -t admissions-bench-compose-XXXXXX)
out=$work/out
mkdir -p "$out"
project=admissions-bench-$("$PY" -c 'import secrets; print(secrets.token_hex(4))')
password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
echo "JWT_SECRET_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')" >"$work/stack.env"
echo "$password" | ADMISSIONS_USERS_FILE=$work/users.json "$PY" -m service.users add bench >/dev/null
model=$(docker image inspect -f '{{index .Config.Labels "org.graduate-admissions.model-tag"}}' "$image")
holder=$(docker create "$image")
docker cp -q "$holder:/home/bentoml/bento/models" "$work/home-models" && docker rm -f "$holder" >/dev/null
mkdir -p "$work/bentoml" && mv "$work/home-models" "$work/bentoml/models"
stack() { COMPOSE_PROJECT_NAME=$project DOCKER_IMAGE=$image PORT=$compose_port ADMISSIONS_ENV_FILE=$work/stack.env \
  ADMISSIONS_USERS_HOST_FILE=$work/users.json bash deploy/stack.sh "$@"; }
server=
cleanup() {
  [ -z "$server" ] || kill -TERM -- "-$server" 2>/dev/null || true
  [ -z "$server" ] || wait "$server" 2>/dev/null || true
  (cd "$(dirname "$0")/.." && COMPOSE_PROJECT_NAME=$project ADMISSIONS_USERS_JSON= docker compose --env-file /dev/null \
    --profile '*' down -v --remove-orphans >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores; image $image (model $model); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
stack up >"$work/stack.log" 2>&1 || { echo "error: the stack did not start:" >&2; tail -20 "$work/stack.log" >&2; exit 1; }
( set -a; . "$work/stack.env"; set +a
  BENTOML_HOME=$work/bentoml ADMISSIONS_MODEL_TAG=$model ADMISSIONS_USERS_FILE=$work/users.json ADMISSIONS_JOBS_DB=$work/jobs.sqlite \
  BENTOML_DO_NOT_TRACK=true exec setsid "$PY" -m bentoml serve service.api:AdmissionsAPI --host 127.0.0.1 --port "$port" \
  >"$work/serve.log" 2>&1 ) &
server=$!
in_process=http://127.0.0.1:$port
compose=http://127.0.0.1:$compose_port
for _ in $(seq 1 120); do curl -sf "$in_process/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$in_process/readyz" >/dev/null || { echo "error: the in-process server is not ready; log:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
token() { curl -sf "$1/login" -H 'Content-Type: application/json' -d "{\"username\":\"bench\",\"password\":\"$password\"}" |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
in_token=$(token "$in_process")
compose_token=$(token "$compose")
api_address=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$project-api-1" | cut -d' ' -f1)
show() { tee "$1" | { grep -E "^(RESULT|CPU)" || true; } | sed 's/^/  /'; }
TOKEN=$in_token bench/load_predict.sh "$in_process" 10 5 >/dev/null  # warm-ups, not reported
TOKEN=$compose_token bench/load_predict.sh "$compose" 10 5 >/dev/null
for round in $(seq 1 "$rounds"); do
  echo "## round $round: /predict, 10 clients, wrk, ${short} s: in-process (make serve)"
  TOKEN=$in_token bench/load_predict.sh "$in_process" 10 "$short" | show "$out/in_process_r$round.wrk"
  echo "## round $round: /predict, 10 clients, wrk, ${short} s: compose, through the published port"
  TOKEN=$compose_token "$PY" bench/compose_cost.py "$project" "$compose" 10 "$short" | show "$out/compose_r$round.wrk"
done
kill -TERM -- "-$server" 2>/dev/null || true  # the in-process server is done: it must not share the cores from here on
wait "$server" 2>/dev/null || true
server=
if [ -n "$api_address" ] && curl -sf -m 2 "http://$api_address:3000/livez" >/dev/null; then
  echo "## /predict, 10 clients: compose, at the API container's address (no docker-proxy; informational)"
  TOKEN=$compose_token "$PY" bench/compose_cost.py "$project" "http://$api_address:3000" 10 "$short" | show "$out/direct.txt"
fi
echo "## /predict, 64 clients, wrk, ${long} s: compose";  TOKEN=$compose_token bench/load_predict.sh "$compose" 64 "$long" | show "$out/compose_64.wrk"
echo "## /predict, 256 clients, wrk, ${long} s: compose"; TOKEN=$compose_token bench/load_predict.sh "$compose" 256 "$long" | show "$out/compose_256.wrk"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/verdict.py --compose "$out"
