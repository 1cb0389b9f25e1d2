#!/usr/bin/env bash
# The test suite from nothing: Debian packages + venv, the Asterisk root of the phone tests, PostgreSQL and Redis,
# then pytest.
# Arguments go to pytest unchanged, e.g.  scripts/run-tests.sh -k webchat -x
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh test
bash scripts/asterisk-root.sh
bash scripts/bot-env.sh
bash scripts/bot-train.sh
bash scripts/services.sh

export PYTHONDONTWRITEBYTECODE=1
status=0
# Two workers (HUB_TEST_WORKERS=0 for one process); tests that share a slow fixture stay together
# (tests/conftest.py groups them).
.venv/bin/python -m pytest -n "${HUB_TEST_WORKERS:-2}" --dist loadgroup "$@" || status=$?

if [[ $status -eq 5 ]]; then
  echo "run-tests: pytest collected no tests (exit 5) - failing" >&2
  exit 1
fi
exit "$status"
