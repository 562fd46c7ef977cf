#!/usr/bin/env bash
# Fuzz the model-file reader and the array checks for SECONDS (default 60)
# with atheris (coverage-guided, libFuzzer). Needs fastmlp and atheris
# importable (pip install ".[fuzz]"). Exits non-zero on any finding; the
# input that caused it is left in build/fuzz/artifacts/. The corpus in
# build/fuzz/corpus/ grows from run to run.
#
#   fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
work=build/fuzz
mkdir -p "$work/corpus" "$work/artifacts" "$work/seeds"
rm -f "$work/artifacts"/*

# Valid model files and arrays to start from: mutations of a real file get
# past the archive's checks far more often than random bytes do.
python fuzz/fuzz_load.py --write-seeds "$work/seeds"

status=0
# -timeout: one input taking 20 s is itself a finding (a loader that hangs).
python fuzz/fuzz_load.py -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
    "$work/corpus" "$work/seeds" || status=$?

if [ "$status" -ne 0 ] || compgen -G "$work/artifacts/*" > /dev/null; then
    echo "fuzz: finding(s), status $status; inputs in $work/artifacts/:" >&2
    ls -l "$work/artifacts" >&2
    exit 1
fi
echo "fuzz: no finding in ${seconds} s"
