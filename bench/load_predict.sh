#!/usr/bin/env bash
# /predict under load with wrk, from a separate process, a valid token on every request.
#   TOKEN=... bench/load_predict.sh URL CLIENTS SECONDS
# Prints wrk's summary and one "RESULT ..." line (rps, p50/p90/p99, non-200 answers, socket errors).
set -euo pipefail
url=${1:?usage: TOKEN=... $0 URL [CLIENTS] [SECONDS]}
clients=${2:-10}
seconds=${3:-30}
command -v wrk >/dev/null || { echo "error: wrk not found (Debian: apt-get install -y wrk)" >&2; exit 2; }
[ -n "${TOKEN:-}" ] || { echo "error: set TOKEN to a bearer token" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
threads=$(( clients < 2 ? 1 : 2 ))
TOKEN=$TOKEN wrk -t"$threads" -c"$clients" -d"${seconds}s" --timeout 10s --latency -s "$here/predict.lua" "$url/predict"
