#!/usr/bin/env bash
# Train the NLU model alone and evaluate it on the held-out examples of tests/nlu_test.yml.
#   bot/evaluate.sh [OUT_DIR]      prints: training seconds, intent accuracy, FAQ response accuracy
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
OUT="${1:-/tmp/shuiwu-nlu-eval}"
mkdir -p "$OUT"
export RASA_TELEMETRY_ENABLED=false RASA_CACHE_DIRECTORY="${SHUIWU_CACHE:-$HOME/.cache/shuiwu-hub}/rasa-cache-eval"
start=$SECONDS
.venv/bin/rasa train nlu --config config.yml --nlu data/nlu --out "$OUT/models" --fixed-model-name nlu >"$OUT/train.log" 2>&1
took=$((SECONDS - start))
.venv/bin/rasa test nlu --nlu tests/nlu_test.yml --model "$OUT/models/nlu.tar.gz" --out "$OUT/results" >"$OUT/test.log" 2>&1
.venv/bin/python - "$OUT" "$took" <<'PY'
import json, sys
out, took = sys.argv[1], sys.argv[2]
intents = json.load(open(f"{out}/results/intent_report.json"))
faq = json.load(open(f"{out}/results/response_selection_report.json"))
print(f"training {took}s  intent accuracy {intents['accuracy']:.3f}  faq accuracy {faq['accuracy']:.3f}")
print(f"errors: {out}/results/intent_errors.json, {out}/results/response_selection_errors.json")
PY
