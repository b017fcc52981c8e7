#!/usr/bin/env bash
# GeoMELT training on one CUDA GPU (prepared, not run here: this project's machines have no
# GPU). Stage 1 on `small-hybrid` at 384 px (12×12 stem tokens) with bf16 autocast, then
# evaluation on val. Usage: scripts/train_gpu.sh OUT_DIR [DATA_ROOT]
set -euo pipefail
out=${1:?usage: scripts/train_gpu.sh OUT_DIR [DATA_ROOT]}
data=${2:-../shared/data}
mkdir -p "$out"
cat > "$out/config.json" <<JSON
{"preset": "small-hybrid", "img_size": 384, "init": "minilm+copy", "epochs": 30,
 "batch_size": 256, "lr": 1e-4, "head_lr_scale": 5.0, "drop_path": 0.1,
 "balancing": "dwa", "dwa_period": 50, "stem_tune_from": 8, "checkpoint_every": 200}
JSON
geomelt model train --config "$out/config.json" --device cuda \
  --data "$data/captions/ucm/dataset_ucm.json@2" \
  --data "scenes:$data/scenes/RSSCN7" --data "scenes:$data/scenes/AID" \
  --feature-cache "$out/cache" --out "$out"
geomelt model eval --model "$out/model.safetensors" --device cuda \
  --data "$data/captions/ucm/dataset_ucm.json" --split val --json "$out/eval_ucm_val.json"
for set in AID RSSCN7; do
  geomelt model eval-zeroshot --model "$out/model.safetensors" --device cuda --part val \
    --images "$data/scenes/$set" --json "$out/zeroshot_$set.json"
done
