#!/usr/bin/env bash
# A minimal Debian sid root with Asterisk 22, built once and cached outside the clone, for the voice tests
# (tests/support/asterisk.py starts Asterisk in it with `chroot <root> /usr/sbin/asterisk -f -C <conf>`).
#
#   scripts/asterisk-root.sh            build when missing, else print one line
#
# Asterisk 22 is only in Debian sid/forky, so it cannot come from the host's apt. debootstrap fetches it from
# the Debian mirror the host's apt already uses. The root lands in
#   ${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}/asterisk-root
# and a tar.zst of it beside it, so a removed or damaged root comes back in seconds without the network.
# Needs root (debootstrap, chroot). Idempotent; serialised with flock.
set -euo pipefail

CACHE="${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}"
DIR="$CACHE/asterisk-root"
ARCHIVE="$CACHE/asterisk-root.tar.zst"
LOG="$CACHE/asterisk-root.log"
PACKAGES=asterisk,asterisk-core-sounds-en

die() { echo "asterisk-root: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (debootstrap and chroot)"
mkdir -p "$CACHE"
exec 8>"$CACHE/.asterisk-root.lock"
flock 8

root_ok() { [[ -x "$DIR/usr/sbin/asterisk" && -f "$DIR/.shuiwu-complete" ]]; }

version() { sed -n 's/^Version: //p' "$DIR/.shuiwu-complete"; }

if root_ok; then
  echo "asterisk-root: up to date, Asterisk $(version) in $DIR"
  exit 0
fi

if [[ -f "$ARCHIVE" ]]; then
  started=$SECONDS
  rm -rf "$DIR.tmp"
  mkdir -p "$DIR.tmp"
  if zstd -dc "$ARCHIVE" | tar -x -C "$DIR.tmp" 2>>"$LOG" && [[ -f "$DIR.tmp/.shuiwu-complete" ]]; then
    rm -rf "$DIR"
    mv "$DIR.tmp" "$DIR"
    echo "asterisk-root: unpacked Asterisk $(version) from $ARCHIVE in $((SECONDS - started))s"
    exit 0
  fi
  echo "asterisk-root: $ARCHIVE is damaged, building anew" >&2
  rm -rf "$DIR.tmp" "$ARCHIVE"
fi

# The mirror apt uses on this host (deb822 .sources or one-line .list files), the Debian default otherwise.
mirror="$(
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
  } | grep -v -- '-security' | head -n 1 || true
)"
mirror="${mirror:-http://deb.debian.org/debian}"

command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (scripts/bootstrap.sh test installs it)"
command -v zstd >/dev/null 2>&1 || die "zstd is missing (scripts/bootstrap.sh test installs it)"

started=$SECONDS
rm -rf "$DIR.tmp"
echo "asterisk-root: building a Debian sid root with Asterisk from $mirror (about a minute, log: $LOG)"
debootstrap --variant=minbase --include="$PACKAGES" sid "$DIR.tmp" "$mirror" >"$LOG" 2>&1 \
  || { tail -n 30 "$LOG" >&2; rm -rf "$DIR.tmp"; die "debootstrap failed"; }
# The package cache is not needed to run Asterisk: 100+ MB less to keep and pack.
rm -rf "$DIR.tmp/var/cache/apt/archives/"*.deb
chroot "$DIR.tmp" dpkg-query -W -f='Version: ${Version}\n' asterisk >"$DIR.tmp/.shuiwu-complete"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
built=$((SECONDS - started))
tar -C "$DIR" -c . | zstd -q -T0 -o "$ARCHIVE.tmp" && mv -f "$ARCHIVE.tmp" "$ARCHIVE"
echo "asterisk-root: built Asterisk $(version) in ${built}s ($(du -sh "$DIR" | cut -f1)), packed in $((SECONDS - started - built))s"
