#!/usr/bin/env bash
# A COCO-format data set through the whole pipeline: no VOC root needed, every command that
# reads a data set takes `--coco FILE --images DIR` (refine takes the image folder alone).
#   bash examples/coco/run.sh [OUT]
# 1. writes a tiny instances.json + images (and box-shaped pseudo-masks) with make_coco.py;
# 2. inspects it (classes, images per class, co-occurrence, problems; exit 2 on an error);
# 3. scores the box masks against the COCO polygons (crowd regions are ignored);
# 4. trains a classifier, makes its CAMs, refines them into masks, scores those and exports
#    them for mmsegmentation. PL_TRAIN_ARGS sets the model and schedule (the default is a small
#    ResNet-18 from scratch: a demonstration of the commands, not of the quality).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-coco-demo}
PL=${PL_COMMAND:-pseudolabel}
TRAIN_ARGS=${PL_TRAIN_ARGS:---student resnet18 --image-size 64 --epochs 3 --batch-size 6}
DATA=(--coco "$OUT/instances.json" --images "$OUT/images")

python "$HERE/make_coco.py" "$OUT"
$PL inspect "${DATA[@]}" --json "$OUT/inspect.json"
$PL evaluate "$OUT/box_masks" "${DATA[@]}" --json "$OUT/box_scores.json" --worst 2

# shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
$PL train "${DATA[@]}" --out "$OUT/run" --val-fraction 0 $TRAIN_ARGS
$PL make-cams "${DATA[@]}" --model "$OUT/run" --out "$OUT/cams.h5" --scales 1.0,2.0
$PL refine "$OUT/cams.h5" --out "$OUT/masks" --images "$OUT/images" \
    --refiner gmm:input=cam+color
$PL evaluate "$OUT/masks" "${DATA[@]}" --json "$OUT/scores.json"
$PL export "$OUT/masks" "${DATA[@]}" --out "$OUT/export"
