#!/usr/bin/env bash
# Prepare this clone to run: a Python 3.11 venv with the project's dependencies and its `test` extra, the
# browser libraries the staff pages load (package.json), and (for `bootstrap.sh test`) the Debian packages the
# test suite needs.
#
#   scripts/bootstrap.sh          venv + browser libraries (enough for `make run` / `make lint`)
#   scripts/bootstrap.sh test     the same + chromium, fonts-noto-cjk, postgresql, redis-server, postgresql-client,
#                                 and for the phone tests debootstrap and zstd (scripts/asterisk-root.sh), sip-tester
#                                 (sipp callers), espeak-ng and sox (spoken prompts)
#
# The venv lives in a cache outside the clone, keyed by pyproject.toml, so fresh clones and `make clean`
# reuse it:  ${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}/venv-<sha256(pyproject.toml)[:12]>,  linked as ./.venv.
# The npm packages likewise (`npm ci`, which needs the npm registry once):  .../npm-<sha256(package-lock.json)[:12]>,
# from where the files the pages load are copied into router/web/static/vendor/ (the hub itself stays offline).
# Idempotent; when everything is in place it only checks and prints one line.
set -euo pipefail

MODE="${1:-run}"
case "$MODE" in
  run | test) ;;
  *) echo "usage: $0 [run|test]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}"
mkdir -p "$CACHE"
KEY="$(sha256sum pyproject.toml | cut -c1-12)"
VENV="$CACHE/venv-$KEY"
MARKER="$VENV/.shuiwu-installed"
PIP_LOG="$CACHE/pip-$KEY.log"
APT_LOG="$CACHE/apt.log"
export DEBIAN_FRONTEND=noninteractive

did=()  # what this run changed, for the one summary line

die() { echo "bootstrap: $*" >&2; exit 1; }

show_log_tail() {  # $1: log file
  if [[ -s "$1" ]]; then
    echo "---- last lines of $1 ----" >&2
    tail -n 40 "$1" >&2
  fi
}

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

apt_updated=0
apt_install() {  # installs the given Debian packages, quietly (output in $APT_LOG)
  local apt=(apt-get -o DPkg::Lock::Timeout=300 -q)
  if [[ $apt_updated -eq 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >"$APT_LOG" 2>&1 \
      || { show_log_tail "$APT_LOG"; die "apt-get update failed"; }
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1 \
    || { show_log_tail "$APT_LOG"; die "apt-get install $* failed"; }
  did+=("apt installed: $*")
}

deb_installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'; }

# Serialise concurrent bootstraps (e.g. two `make` targets at once) on this cache.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.bootstrap.lock"
  flock 9
fi

# --- Debian packages --------------------------------------------------------------------------------
if [[ "$MODE" == test ]]; then
  if command -v dpkg >/dev/null 2>&1; then
    missing=()
    for pkg in chromium fonts-noto-cjk postgresql redis-server postgresql-client \
               debootstrap zstd sip-tester espeak-ng sox; do
      deb_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
      apt_install "${missing[@]}"
    fi
  else
    did+=("no dpkg: Debian packages not checked")
  fi
fi

# --- Python 3.11 with venv ----------------------------------------------------------------------------
python_ok() {  # $1: interpreter; true if it is CPython 3.11 and can make venvs (Debian needs python3-venv)
  command -v "$1" >/dev/null 2>&1 \
    && "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1
}

find_python() {
  local cand
  for cand in python3.11 python3 /usr/bin/python3.11 /usr/bin/python3; do
    if python_ok "$cand"; then
      command -v "$cand"
      return 0
    fi
  done
  return 1
}

venv_usable() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c '' >/dev/null 2>&1; }

if ! venv_usable; then
  PYTHON="$(find_python)" || {
    apt_install python3 python3-venv python3-dev
    PYTHON="$(find_python)" || die "no Python 3.11 with the venv module, even after installing Debian python3"
  }
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create venv with $PYTHON"
  did+=("created venv-$KEY with $("$PYTHON" -c 'import platform; print(platform.python_version())')")
fi

pip_install() {  # pip install ... into the venv, output in $PIP_LOG
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" >"$PIP_LOG" 2>&1 \
    || { show_log_tail "$PIP_LOG"; die "pip install $* failed (full log: $PIP_LOG)"; }
}

if [[ ! -f "$MARKER" ]]; then
  started=$SECONDS
  # Only the dependencies (and the `test` extra): the code runs from the clone itself (`python -m router`
  # from its root), so any number of clones can share this venv without pointing it at one of them.
  mapfile -t requirements < <("$VENV/bin/python" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
)
  pip_install "${requirements[@]}"
  touch "$MARKER"
  did+=("installed ${#requirements[@]} requirements in $((SECONDS - started))s")
fi

# --- ./.venv -> cached venv ---------------------------------------------------------------------------
if [[ -e .venv && ! -L .venv ]]; then
  die "./.venv is a real directory or file, not a symlink; move it away and re-run"
fi
if [[ "$(readlink .venv 2>/dev/null || true)" != "$VENV" ]]; then
  ln -s "$VENV" ".venv.tmp.$$"
  mv -Tf ".venv.tmp.$$" .venv
  did+=("linked ./.venv")
fi

# --- browser libraries (npm) --------------------------------------------------------------------------------
NPM_KEY="$(sha256sum package-lock.json | cut -c1-12)"
NPM_DIR="$CACHE/npm-$NPM_KEY"
NPM_LOG="$CACHE/npm-$NPM_KEY.log"
VENDOR=router/web/static/vendor  # served at /app/static/vendor/ (the wallboard's charts, the softphone's SIP stack)

if [[ ! -f "$NPM_DIR/.shuiwu-installed" ]]; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  started=$SECONDS
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  cp package.json package-lock.json "$NPM_DIR/"
  # No install scripts: only files are needed from these packages.
  (cd "$NPM_DIR" && npm ci --ignore-scripts --no-audit --no-fund) >"$NPM_LOG" 2>&1 \
    || { show_log_tail "$NPM_LOG"; die "npm ci failed (full log: $NPM_LOG)"; }
  touch "$NPM_DIR/.shuiwu-installed"
  did+=("installed npm packages in $((SECONDS - started))s")
fi
# vendor <what> <from, under node_modules> <to, under $VENDOR>: a file or a folder, replaced in one step.
vendor() {
  local source="$NPM_DIR/node_modules/$2" target="$VENDOR/$3"
  if ! diff -rq "$source" "$target" >/dev/null 2>&1; then
    mkdir -p "$VENDOR"
    rm -rf "$target.tmp.$$"
    cp -r "$source" "$target.tmp.$$"
    rm -rf "$target"
    mv "$target.tmp.$$" "$target"
    did+=("copied $1")
  fi
}
vendor echarts echarts/dist/echarts.min.js echarts.min.js
vendor SIP.js sip.js/lib sip.js  # ES modules with relative imports: loaded as they are, nothing to build

if [[ ${#did[@]} -eq 0 ]]; then
  echo "bootstrap ($MODE): up to date, ./.venv -> $VENV"
else
  summary="$(printf '%s; ' "${did[@]}")"
  echo "bootstrap ($MODE): ${summary%; }; ./.venv -> $VENV"
fi
