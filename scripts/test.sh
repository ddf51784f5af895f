#!/usr/bin/env bash
# Runs every flowship test on a fresh machine: sets itself up, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k plan -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh
# In CI a test that cannot reach its server fails instead of skipping.
if [ "${CI:-}" = "true" ]; then export FLOWSHIP_REQUIRE_SERVICES=1; fi
exec "$ROOT/.venv/bin/python" -m pytest "$@"
