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
  RASA_TELEMETRY_ENABLED=false RASA_CACHE_DIRECTORY="$CACHE/rasa-cache" .venv/bin/rasa train --config config.yml --domain domain --data data \
    --out "$CACHE/models" --fixed-model-name "$NAME" >"$CACHE/models/$NAME.log" 2>&1 \
    || { tail -n 40 "$CACHE/models/$NAME.log" >&2; echo "bot-train: rasa train failed" >&2; exit 1; }
  echo "bot-train: trained $NAME in $((SECONDS - started))s"
fi
ln -sfn "$MODEL" models/current.tar.gz
echo "bot-train: bot/models/current.tar.gz -> $MODEL"
