#!/usr/bin/env bash
# Pipeline speed: a run from clean artefacts (through BuildBento, the `make pipeline` default) and a
# re-run with nothing changed, each timed from the shell, in a temporary artefacts folder and
# BENTOML_HOME so nothing of yours is touched. Environment already created (make env-create).
# Usage: bench/pipeline.sh [RUNS]   (default 3; prints each time and the median)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
python=.tox/dev/bin/python
[ -x "$python" ] || { echo "run 'make env-create' first"; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
seconds() { local start=$EPOCHREALTIME; "$@" >/dev/null 2>&1; awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'; }

clean=(); noop=()
for i in $(seq "$runs"); do
  work=$(mktemp -d)
  export BENTOML_HOME="$work/bentoml"
  run=("$python" -m pipeline run BuildBento --local-scheduler --workers 2 --artefacts-dir "$work/artefacts")
  clean+=("$(seconds "${run[@]}")")
  noop+=("$(seconds "${run[@]}")")
  echo "run $i: clean ${clean[-1]} s, no-op re-run ${noop[-1]} s"
  rm -rf "$work"
done
echo "median of $runs: clean $(printf '%s\n' "${clean[@]}" | median) s, no-op $(printf '%s\n' "${noop[@]}" | median) s ($(nproc) cores)"
