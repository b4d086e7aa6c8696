#!/usr/bin/env bash
# A COCO-format data set with pseudolabel: no VOC root needed, `--coco FILE --images DIR`.
#   bash examples/coco/run.sh [OUT]
# 1. writes a tiny instances.json + images (and box-shaped pseudo-masks) with make_coco.py;
# 2. inspects it (classes, images per class, co-occurrence, problems);
# 3. scores the box masks against the COCO polygons (crowd regions are ignored).
# With your own COCO data, the masks come from `pseudolabel refine` instead (train and
# make-cams read --coco/--images the same way).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-coco-demo}
PL=${PL_COMMAND:-pseudolabel}

python "$HERE/make_coco.py" "$OUT"
$PL inspect --coco "$OUT/instances.json" --images "$OUT/images" --json "$OUT/inspect.json"
$PL evaluate "$OUT/box_masks" --coco "$OUT/instances.json" --images "$OUT/images" \
    --json "$OUT/box_scores.json" --worst 2
