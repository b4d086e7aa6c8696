#!/usr/bin/env bash
# The whole pipeline from the command line, on the built-in synthetic smoke data:
#   demo-data -> inspect -> train -> make-cams -> refine (baseline, power background -> crf) -> evaluate
#   -> report -> export
# Every step resumes when rerun. Sizes come from environment variables, so the same script runs
# as a real demo (the defaults: a few minutes on a laptop CPU) and as a seconds-long test:
#   PL_OUT=quickstart PL_N=300 PL_SIZE=128 PL_EPOCHS=6 PL_STUDENT=resnet10t bash examples/quickstart.sh
set -euo pipefail

OUT=${PL_OUT:-quickstart}
N=${PL_N:-300}                 # images of the synthetic data set
SIZE=${PL_SIZE:-128}           # their side in pixels (also the training input size)
EPOCHS=${PL_EPOCHS:-6}
STUDENT=${PL_STUDENT:-resnet10t}
SCALES=${PL_SCALES:-1.0,0.5,1.5}
DEVICE=${PL_DEVICE:-auto}
PL=${PL_COMMAND:-pseudolabel}  # e.g. "python -m pseudolabel"

mkdir -p "$OUT"
# 1. data: OUT/data is a VOC-style root (JPEGImages/, SegmentationClass/, labels.csv, splits)
$PL demo-data "$OUT/data" --n-images "$N" --size "$SIZE"
$PL inspect "$OUT/data" --split train

# 2. a classifier from the image-level labels only
$PL train "$OUT/data" --out "$OUT/run" --student "$STUDENT" --epochs "$EPOCHS" \
    --image-size "$SIZE" --batch-size 16 --val-split val --num-workers 0 --device "$DEVICE"

# 3. multi-scale CAMs of every training image, in one HDF5 store
$PL make-cams "$OUT/data" --model "$OUT/run" --out "$OUT/cams.h5" --split train \
    --scales "$SCALES" --grid finest --workers 0 --device "$DEVICE"

# 4. pseudo-masks: a plain threshold (the baseline) and the best label-free chain measured on
#    real smoke tiles (README): AffinityNet's (1 - max)^4 background, then the dense CRF
$PL refine "$OUT/cams.h5" --out "$OUT/masks-threshold" --refiner threshold:t=0.3
$PL refine "$OUT/cams.h5" --out "$OUT/masks" --images "$OUT/data" \
    --refiner threshold:background=power --refiner crf

# 5. scores against the ground truth, an HTML report, and the hand-over to a segmenter
$PL evaluate "$OUT/masks-threshold" --gt "$OUT/data" --split train --json "$OUT/threshold.json"
$PL evaluate "$OUT/masks" --gt "$OUT/data" --split train --json "$OUT/scores.json" --worst 3
$PL report "$OUT/masks" --out "$OUT/report.html" --gt "$OUT/data" --split train \
    --cams "$OUT/cams.h5" --run "$OUT/run" --gallery 12
$PL export "$OUT/masks" --images "$OUT/data" --split train --out "$OUT/export"
echo "done: masks in $OUT/masks, scores in $OUT/scores.json, report $OUT/report.html"
