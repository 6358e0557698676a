#!/usr/bin/env bash
# The compose stack of this checkout: `make run-docker` / `make stop-docker` call this.
#   deploy/stack.sh up      image checks, users file and secret in, `docker compose up --wait`, URL out
#   deploy/stack.sh down    stops this checkout's stack only (its volumes stay)
#   deploy/stack.sh name    prints the compose project name
# Variables: DOCKER_IMAGE, MODEL_VERSION, PORT, COMPOSE_PROJECT_NAME, MONITORING=1, POSTGRES=1, SCALE,
# ADMISSIONS_ENV_FILE, ADMISSIONS_USERS_HOST_FILE (see docs/docker.md). Every failure is one line on stderr
# and exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."

LABEL=org.graduate-admissions
PROMETHEUS_UPSTREAM=prom/prometheus:v3.5.0   # pinned; pulled where a registry answers
PROMETHEUS_LOCAL=admissions-prometheus:2.42  # else built from Debian's package (deploy/prometheus)
POSTGRES_LOCAL=admissions-postgres:15        # always built here, from Debian's package (deploy/postgres)

fail() { echo "$*" >&2; exit 1; }

# Default project name: this checkout's folder name plus a hash of its path, so two clones never
# share (or stop) one stack.
project_name() {
    local base
    base=$(basename "$PWD" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_-' '-' | sed 's/^-*//; s/-*$//')
    echo "admissions-${base:-x}-$(printf %s "$PWD" | sha256sum | cut -c1-8)"
}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-$(project_name)}

need_engine() {
    docker info >/dev/null 2>&1 ||
        fail "No container engine is reachable (docker info failed); run this on a machine with Docker."
}

# The image to run: DOCKER_IMAGE, else the newest image of MODEL_VERSION's model, else admissions_api:latest.
choose_image() {
    local image=${DOCKER_IMAGE:-}
    if [ -z "$image" ] && [ -n "${MODEL_VERSION:-}" ]; then
        local model=$MODEL_VERSION
        if [[ ${model#admissions:} == champion || ${model#admissions:} == challenger ]]; then
            # An alias: the model it names in this checkout's store (make aliases). core/aliases.py reads
            # the record with the standard library alone, so any python3 will do.
            local alias=${model#admissions:}
            model=$(python3 -c 'import sys; from core import aliases; print(aliases.alias_tag("admissions", sys.argv[1]) or "")' "$alias" 2>/dev/null || true)
            [ -n "$model" ] || fail "No model is $alias in this store (make aliases); run make pipeline first."
        fi
        [[ $model == *:* ]] || model="admissions:$model"
        image=$(docker images --filter "label=$LABEL.model-tag=$model" --format '{{.Repository}}:{{.Tag}}' |
            grep -v ':latest$' | head -1 || true)
        if [ -z "$image" ]; then
            local built
            built=$(docker images -q --filter "label=$LABEL.model-tag" | sort -u |
                xargs -r docker image inspect -f "{{index .Config.Labels \"$LABEL.model-tag\"}}" |
                sort -u | paste -sd, - | sed 's/,/, /g')
            fail "No image serves model $model (images exist for: ${built:-none}); a different model is a different Bento image: run MODEL_VERSION=${MODEL_VERSION} make build-docker first."
        fi
    fi
    image=${image:-admissions_api:latest}
    docker image inspect "$image" >/dev/null 2>&1 ||
        fail "The image $image is not in the Docker engine (it is never pulled): run make build-docker first."
    echo "$image"
}

# Prometheus: the pinned upstream image if it is here or can be pulled, else the local Debian build.
prometheus_image() {
    local image=${PROMETHEUS_IMAGE:-}
    if [ -n "$image" ]; then echo "$image"; return; fi
    if docker image inspect "$PROMETHEUS_UPSTREAM" >/dev/null 2>&1 ||
        timeout 60 docker pull -q "$PROMETHEUS_UPSTREAM" >/dev/null 2>&1; then
        echo "$PROMETHEUS_UPSTREAM"; return
    fi
    if ! docker image inspect "$PROMETHEUS_LOCAL" >/dev/null 2>&1; then
        echo "No registry for $PROMETHEUS_UPSTREAM: building $PROMETHEUS_LOCAL from Debian's prometheus package." >&2
        local log=artefacts/prometheus-build.log
        mkdir -p artefacts
        DOCKER_BUILDKIT=0 docker build -t "$PROMETHEUS_LOCAL" deploy/prometheus >"$log" 2>&1 ||
            fail "The Prometheus image build failed; full build log: $log"
    fi
    echo "$PROMETHEUS_LOCAL"
}

# PostgreSQL (POSTGRES=1): POSTGRES_IMAGE, else the local build of deploy/postgres, tagged with a hash of that
# folder so a change to it is built again.
postgres_image() {
    local image=${POSTGRES_IMAGE:-}
    if [ -n "$image" ]; then echo "$image"; return; fi
    image=$POSTGRES_LOCAL-$(cat deploy/postgres/Dockerfile deploy/postgres/entrypoint.sh | sha256sum | cut -c1-12)
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        echo "Building $image from Debian's postgresql package (deploy/postgres), about a minute the first time." >&2
        local log=artefacts/postgres-build.log
        mkdir -p artefacts
        DOCKER_BUILDKIT=0 docker build -t "$image" deploy/postgres >"$log" 2>&1 ||
            fail "The PostgreSQL image build failed; full build log: $log"
    fi
    docker tag "$image" "$POSTGRES_LOCAL"  # the compose file's default, for docker compose by hand
    echo "$image"
}

enabled() { [ -n "${1:-}" ] && [ "$1" != 0 ]; }

up() {
    need_engine
    local env_file=${ADMISSIONS_ENV_FILE:-.env}
    [ -f "$env_file" ] || fail "No $env_file: copy .env.example to .env and fill it in (see README)."
    grep -Eq '^JWT_SECRET_KEY=.{32,}' "$env_file" ||
        fail "$env_file has no JWT_SECRET_KEY of 32+ characters: generate one as .env.example shows."
    local postgres_password=
    if enabled "${POSTGRES:-}"; then
        postgres_password=$(sed -n 's/^ADMISSIONS_POSTGRES_PASSWORD=//p' "$env_file" | tail -1)
        [[ $postgres_password =~ ^[A-Za-z0-9_-]{24,}$ ]] ||
            fail "POSTGRES=1 needs ADMISSIONS_POSTGRES_PASSWORD in $env_file, 24+ characters of A-Z a-z 0-9 _ -: generate one as .env.example shows."
    fi
    local users=${ADMISSIONS_USERS_HOST_FILE:-var/users.json}
    [ -r "$users" ] || fail "No users file $users: add a user with make users-add NAME=alice first."
    export ADMISSIONS_USERS_JSON ADMISSIONS_USERS_SHA256 ADMISSIONS_IMAGE
    ADMISSIONS_USERS_JSON=$(cat "$users")
    ADMISSIONS_USERS_SHA256=$(sha256sum <"$users" | cut -c1-64)
    ADMISSIONS_IMAGE=$(choose_image)
    export API_PORT=${PORT:-${API_PORT:-3000}}
    local profiles=()
    if enabled "${MONITORING:-}"; then
        PROMETHEUS_IMAGE=$(prometheus_image)
        export PROMETHEUS_IMAGE
        profiles+=(--profile monitoring)
    fi
    # The jobs: PostgreSQL in the postgres service, or (as before) the SQLite file, or a URL from the env file.
    # Never an ADMISSIONS_JOBS_URL of this shell: it names a database as this host sees it.
    unset ADMISSIONS_JOBS_URL
    export ADMISSIONS_POSTGRES_PASSWORD=$postgres_password
    if [ -n "$postgres_password" ]; then
        POSTGRES_IMAGE=$(postgres_image)
        export POSTGRES_IMAGE
        export ADMISSIONS_JOBS_URL="postgresql://admissions:$postgres_password@postgres:5432/admissions"
        ADMISSIONS_POSTGRES_PASSWORD_SHA256=$(printf %s "$postgres_password" | sha256sum | cut -c1-64)
        export ADMISSIONS_POSTGRES_PASSWORD_SHA256
        profiles+=(--profile postgres)
    elif [ -n "$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter label=com.docker.compose.volume=postgres)" ]; then
        echo "Note: this stack has jobs in PostgreSQL (volume ${COMPOSE_PROJECT_NAME}_postgres); without POSTGRES=1 the API uses the SQLite file instead (jobs are not moved): make run-docker POSTGRES=1 keeps PostgreSQL." >&2
    fi
    local scale=()
    for replicas in ${SCALE:-}; do  # SCALE="batch=2 single=2": more model-service replicas
        [[ $replicas =~ ^(single|batch)=[1-9][0-9]*$ ]] || fail "SCALE takes single=N and batch=N, not '$replicas'."
        scale+=(--scale "$replicas")
    done
    local model bento
    model=$(docker image inspect -f "{{index .Config.Labels \"$LABEL.model-tag\"}}" "$ADMISSIONS_IMAGE")
    bento=$(docker image inspect -f "{{index .Config.Labels \"$LABEL.bento\"}}" "$ADMISSIONS_IMAGE")
    echo "Starting $COMPOSE_PROJECT_NAME: image $ADMISSIONS_IMAGE (Bento ${bento:-?}, model ${model:-?})"
    local started=$SECONDS
    docker compose --env-file "$env_file" "${profiles[@]}" up -d --wait --wait-timeout "${WAIT_S:-300}" --pull never "${scale[@]}" ||
        fail "The stack did not become healthy; see: docker compose -p $COMPOSE_PROJECT_NAME logs"
    local host=${API_BIND:-127.0.0.1}
    [ "$host" = 0.0.0.0 ] && host=127.0.0.1
    echo "Healthy after $((SECONDS - started)) s. API: http://$host:$API_PORT  (docs: http://$host:$API_PORT/ , metrics: /metrics)"
    if enabled "${MONITORING:-}"; then echo "Prometheus: http://127.0.0.1:${PROMETHEUS_PORT:-9090}"; fi
    [ -z "$postgres_password" ] || echo "Jobs: PostgreSQL (service postgres, volume ${COMPOSE_PROJECT_NAME}_postgres)"
}

down() {
    need_engine
    # Every profile, so the monitoring and postgres containers stop too; volumes (jobs, metrics) stay.
    ADMISSIONS_USERS_JSON= ADMISSIONS_POSTGRES_PASSWORD= docker compose --env-file /dev/null --profile '*' down
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    name) echo "$COMPOSE_PROJECT_NAME" ;;
    *) fail "usage: deploy/stack.sh up|down|name" ;;
esac
