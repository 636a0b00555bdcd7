#!/usr/bin/env bash
# One command for the vector-store benchmark: ours vs raw psycopg vs langchain-postgres (v1, v2) and
# llama-index's PGVectorStore, one embedded PostgreSQL 18 + pgvector 0.8 server, one process.
#
#   bash bench/run_pg.sh            # full size; writes bench/results/pg_latest.md
#   bash bench/run_pg.sh --smoke    # tiny sizes, seconds
#
# The anchors pin old libraries (pgvector<0.4, SQLAlchemy<2.1), so they live in .bench-venv (the
# package installed editable with its `bench` extra), never in the development environment.
# BENCH_PYTHON=/path/to/python skips the venv and uses that interpreter as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -n "${BENCH_PYTHON:-}" ]; then
  py="$BENCH_PYTHON"
else
  venv=.bench-venv
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
  fi
  # Idempotent: installs only what is missing or out of date (no --force: the venv is shared
  # with the other bench scripts); quiet and quick when everything is already there.
  "$venv/bin/pip" install -q -e '.[bench]'
  py="$venv/bin/python"
fi
exec "$py" bench/bench_pg.py "$@"
