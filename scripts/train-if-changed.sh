#!/usr/bin/env bash
# Train the Rasa model only when its inputs changed.
# Inputs: config.yml, domain/, the Rasa training data under data/, our NLU
# components and dictionaries in nlu/, and the rasa lock. A stamp beside the
# model records their hash. nlu/channel.py and nlu/server.py only serve (the
# input channel, the launcher): they are not inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=models/gridbot.tar.gz
STAMP=models/.inputs.sha256
inputs=$(find config.yml domain data/nlu data/rules data/stories nlu core/text.py core/protocol.py locks/rasa.txt \
           -type f \( -name '*.yml' -o -name '*.py' -o -name '*.txt' \) -not -path '*/__pycache__/*' \
           -not -path nlu/channel.py -not -path nlu/server.py | LC_ALL=C sort)
hash=$(sha256sum $inputs | sha256sum | cut -c1-64)
if [[ -f $MODEL && "$(cat $STAMP 2>/dev/null)" == "$hash" && "${FORCE_TRAIN:-}" != 1 ]]; then
    echo "model: up to date ($MODEL)" >&2
    exit 0
fi
echo "model: inputs changed, training (a few minutes on 2 cores)" >&2
mkdir -p models
start=$(date +%s)
PYTHONPATH=$(pwd) TF_CPP_MIN_LOG_LEVEL=2 RASA_TELEMETRY_ENABLED=false .venv-rasa/bin/rasa train \
    --config config.yml --domain domain --data data/nlu data/rules data/stories \
    --out models --fixed-model-name gridbot
echo "$hash" > $STAMP
echo "model: trained in $(( $(date +%s) - start )) s" >&2
echo "$(( $(date +%s) - start ))" > models/.train_seconds
