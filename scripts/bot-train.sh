#!/usr/bin/env bash
# Train the bot only when its data changed: the model is kept in the cache under a hash of everything that
# goes into it, and linked as bot/models/current.tar.gz (what the hub's HUB_BOT_MODEL_PATH points at).
#
#   ${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}/models/bot-<sha256 of bot data>[:16].tar.gz
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/bot"
CACHE="${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}"
mkdir -p "$CACHE/models" models
KEY="$(find config.yml components domain data dict requirements.txt -type f -not -path "*/__pycache__/*" -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
NAME="bot-$KEY"
MODEL="$CACHE/models/$NAME.tar.gz"

if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.bot-train.lock"
  flock 9
fi

if [[ ! -f "$MODEL" ]]; then
  started=$SECONDS
  LOG="$CACHE/models/$NAME.log"
  echo "bot-train: training $NAME (minutes; full log: $LOG)"
  RASA_TELEMETRY_ENABLED=false RASA_CACHE_DIRECTORY="$CACHE/rasa-cache" .venv/bin/rasa train --config config.yml --domain domain --data data \
    --out "$CACHE/models" --fixed-model-name "$NAME" >"$LOG" 2>&1 &
  rasa=$!
  trap 'kill "$rasa" 2>/dev/null || true' EXIT  # interrupted (Ctrl-C): training in the background stops too
  # What is being trained, its epochs, the seconds so far and what is still to come, every few seconds.
  python3 "$ROOT/scripts/train_progress.py" "$LOG" config.yml --pid "$rasa" || true
  status=0
  wait "$rasa" || status=$?
  if [[ $status -ne 0 ]]; then
    tail -n 40 "$LOG" >&2
    echo "bot-train: rasa train failed" >&2
    exit 1
  fi
  trap - EXIT
  echo "bot-train: trained $NAME in $((SECONDS - started))s"
fi
ln -sfn "$MODEL" models/current.tar.gz
echo "bot-train: bot/models/current.tar.gz -> $MODEL"
