#!/usr/bin/env bash
# Every figure of docs/reliability.md in one command (issue 7):
#   bench/run_load.sh            # full load (30 s per phase) + the reliability tests
#   bench/run_load.sh --smoke    # small load + the reliability tests
# Extra arguments go to bench/load.py (--duration, --rows, --dsn, ...).
# Figures land in ${REL_OUT:-/tmp/qwen-pg-reliability}: load.json, load.md, figures.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
OUT="${REL_OUT:-/tmp/qwen-pg-reliability}"
mkdir -p "$OUT"
rm -f "$OUT/figures.jsonl"
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"

set +e
"$PY" bench/load.py --json "$OUT/load.json" "$@" | tee "$OUT/load.md"
load_rc=${PIPESTATUS[0]}
QWEN_PG_REL_FIGURES="$OUT/figures.jsonl" "$PY" -m pytest -q -s -rxX -p no:cacheprovider \
  tests/test_reliability_ingest_faults.py tests/test_reliability_db_faults.py \
  tests/test_reliability_load_smoke.py tests/test_bad_input.py tests/test_security_secrets.py \
  > "$OUT/tests.log" 2>&1
tests_rc=$?
set -e
echo
grep -E '^(XFAIL|XPASS|FAILED|ERROR)|passed|failed' "$OUT/tests.log" || true
echo
echo "figures of the fault scenarios ($OUT/figures.jsonl):"
cat "$OUT/figures.jsonl"
[ "$load_rc" -eq 0 ] && [ "$tests_rc" -eq 0 ]
