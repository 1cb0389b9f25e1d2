#!/usr/bin/env bash
# The Rasa server's Python 3.10 virtual environment, kept in the cache outside the clone and linked as bot/.venv.
#
#   ${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}/rasa-venv-<sha256(bot/requirements.txt)[:12]>
#
# Rasa 3.6 runs only on Python <= 3.10; the interpreter is looked for on PATH, under pyenv, then through uv.
# Idempotent: with everything in place it only checks and prints one line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}"
mkdir -p "$CACHE"
KEY="$(sha256sum bot/requirements.txt | cut -c1-12)"
VENV="$CACHE/rasa-venv-$KEY"
MARKER="$VENV/.shuiwu-installed"
LOG="$CACHE/rasa-pip-$KEY.log"

die() { echo "bot-env: $*" >&2; exit 1; }

if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.bot-env.lock"
  flock 9
fi

is_310() { [[ -n "$1" ]] && "$1" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python310() {
  local cand
  for cand in "$(command -v python3.10 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10; do
    if is_310 "$cand"; then echo "$cand"; return 0; fi
  done
  if command -v uv >/dev/null 2>&1; then
    cand="$(uv python find 3.10 2>/dev/null || true)"
    if is_310 "$cand"; then echo "$cand"; return 0; fi
  fi
  return 1
}

did=""
if [[ ! -f "$MARKER" ]]; then
  PYTHON="$(find_python310)" || die "Rasa 3.6 needs Python 3.10: install it (pyenv install 3.10, or uv python install 3.10) and re-run"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  started=$SECONDS
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade "pip<25" "setuptools<70" wheel >"$LOG" 2>&1 \
    && "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r bot/requirements.txt >>"$LOG" 2>&1 \
    || { tail -n 40 "$LOG" >&2; die "pip install failed (full log: $LOG)"; }
  touch "$MARKER"
  did="installed Rasa in $((SECONDS - started))s; "
fi

if [[ "$(readlink bot/.venv 2>/dev/null || true)" != "$VENV" ]]; then
  [[ -e bot/.venv && ! -L bot/.venv ]] && die "bot/.venv is not a symlink; move it away and re-run"
  ln -sfn "$VENV" bot/.venv
fi
echo "bot-env: ${did}bot/.venv -> $VENV"
