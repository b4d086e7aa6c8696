"""The seed papers' ablations in one command: pseudo-mask mIoU / precision / recall per variant.

    python benchmarks/quality.py [--data ../shared/data/smoke-tiles | --data demo]
        [--preset tiny|quick|standard|ablation] [--out benchmarks/results/quality-<data>] [--only models,refiners,fusion]
        [--seeds 0,1] [--variants cnn,cnn-neg,...] [--grid layer|finest]

Writes OUT/quality.md, OUT/quality.json and OUT/curves.json (the λ and threshold curves, for
``pseudolabel report --curves OUT/curves.json``). Every piece of work (a trained run, a CAM
store, a scored row) is kept in OUT, so a rerun skips what is done and an interrupted run
continues.

The WSSS protocol: classifiers train on the image-level labels of a stratified subset of the
data root; CAMs and pseudo-masks are made for the same images and scored against
SegmentationClass (ground truth is used for scoring only; the rows marked "oracle" pick the
threshold t on it, an upper bound, not a method).

Sections of the table:

models    single CNN (tf_efficientnet_lite0 from the local ImageNet weights), single ViT
          (vit_tiny_patch16_224 from scratch), teacher-student (the CNN student aligned to the
          trained ViT, frozen) with global / spatial / channel alignment, channel alignment without
          the projector, a λ sweep, dual-stage distillation (features + outputs + CAMs), and
          co-training; the seed paper's own direction (the pretrained CNN, frozen, teaching a
          ViT student: global / spatial / channel, no projector, a λ sweep); levers of the single
          CNN (a loss on the CAMs of negatives, training at the tiles' own size). Each row:
          validation AP, and the masks of its CAM through the oracle threshold, through the
          label-free gmm and through the label-free threshold:background=power → crf. --variants
          runs a subset, --grid finest keeps the finest view's CAM grid.
refiners  every refiner and the useful chains on the single CNN's CAMs, with images/s.
fusion    multi-layer CAM fusion (LayerCAM of the last two stages) with poor seeds (an early
          checkpoint: one epoch at a tenth of the learning rate) and with good ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pseudolabel.cams.stage import MakeCamsConfig
from pseudolabel.cams.stage import run as make_cams
from pseudolabel.evaluate.metrics import ConfusionAccumulator
from pseudolabel.io import atomic_write
from pseudolabel.models import load_run
from pseudolabel.pipeline import LABEL_FREE_GMM
from pseudolabel.refine.api import (
    apply_chain,
    create_chain,
    fit_chain,
    iter_states,
    read_ground_truth,
    to_mask,
)
from pseudolabel.refine.crf import pydensecrf_available
from pseudolabel.train import TrainConfig
from pseudolabel.train import run as train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_ap import make_subset

log = logging.getLogger("quality")
HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"
CNN, VIT = "tf_efficientnet_lite0", "vit_tiny_patch16_224"
# the label-free chain of the model rows' last columns: the best measured on smoke tiles (600
# tiles, seeds 0 and 1: 0.648 / 0.649 mIoU against 0.625 / 0.649 for threshold -> crf)
RECOMMENDED = ("threshold:background=power", "crf")


def fusion_layer(run_dir: Path) -> str:
    """The deepest layer of the run's student on a finer grid than ``features`` (the stage
    before the last: blocks.4 of an EfficientNet, layer3 of a ResNet)."""
    model, _ = load_run(run_dir, "student", map_location="cpu")
    stride = model.layer_info("features").reduction
    finer = [n for n in model.layer_names() if model.layer_info(n).reduction < stride]
    if not finer:
        raise SystemExit(f"{model.name}: no layer finer than features for the fusion rows")
    return finer[-1]
SWEEP = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class Preset:
    """Sizes of one benchmark run."""

    limit: int  # training (= pseudo-mask) images
    val_limit: int  # held-out images for the classifier's AP
    size: int  # training input side (px)
    epochs: int
    scales: tuple[float, ...]  # make-cams views (flip always on)
    lambdas: tuple[float, ...]  # the KD weight sweep (teacher-student, spatial)
    native: int = 160  # the lever "train at the images' own size" (skipped when == size)


PRESETS = {
    "tiny": Preset(limit=24, val_limit=16, size=64, epochs=1, scales=(1.0,), lambdas=(0.1,),
                   native=64),
    "quick": Preset(limit=160, val_limit=80, size=128, epochs=2, scales=(1.0, 2.0),
                    lambdas=(0.1, 1.0, 10.0)),
    "standard": Preset(limit=600, val_limit=200, size=128, epochs=4, scales=(1.0, 2.0),
                       lambdas=(0.1, 0.3, 1.0, 3.0, 10.0)),
    # the seed paper's ablations over two seeds on a 2-core CPU (about an hour): fewer tiles and
    # epochs than "standard", the paper's λ sweep points (0.3, 1, 1.5) and 3
    "ablation": Preset(limit=400, val_limit=100, size=128, epochs=3, scales=(1.0, 2.0),
                       lambdas=(0.3, 1.0, 1.5, 3.0)),
}


# -- the rows ------------------------------------------------------------------------------------

def model_rows(p: Preset, runs: Path, cnn_name: str, vit_name: str, weights: Path | None,
               suffix: str = "") -> list[tuple[str, str, dict]]:
    """(title, run name + suffix, TrainConfig overrides), in training order (the ViT before the
    students it teaches)."""
    cnn = {"student": cnn_name, "student_weights": weights}
    ts = {"mode": "teacher-student", **cnn, "teacher": vit_name,
          "teacher_checkpoint": runs / f"vit{suffix}" / "student.pt", "kd_weight": 1.0}
    rev = {"mode": "teacher-student", "student": vit_name, "student_weights": None, "teacher": cnn_name,
           "teacher_checkpoint": runs / f"cnn{suffix}" / "student.pt", "kd_weight": 1.0}
    rows = [
        ("single CNN", "cnn", {"mode": "single", **cnn}),
        ("single ViT", "vit", {"mode": "single", "student": vit_name, "student_weights": None}),
        *[(f"T-S {a} (λ=1)", f"ts-{a}-l1", {**ts, "align": a}) for a in ("global", "spatial", "channel")],
        ("T-S channel, no projector", "ts-channel-l1-noproj", {**ts, "align": "channel", "projector": False}),
        *[(f"T-S spatial λ={lam:g}", f"ts-spatial-l{lam:g}", {**ts, "align": "spatial", "kd_weight": lam})
          for lam in p.lambdas if lam != 1.0],
        ("T-S spatial + output & CAM distillation", "ts-spatial-dual",
         {**ts, "align": "spatial", "out_kd_weight": 1.0, "cam_kd_weight": 1.0}),
        ("co-training (CNN's CAMs)", "co", {"mode": "co-training", **cnn, "teacher": vit_name, "align": "spatial"}),
        # the seed paper's direction: the pretrained CNN (the "single CNN" run) teaches a ViT
        *[(f"paper direction: CNN teacher → ViT student, {a} (λ=1)", f"rev-{a}-l1", {**rev, "align": a})
          for a in ("global", "spatial", "channel")],
        ("paper direction, channel, no projector", "rev-channel-l1-noproj",
         {**rev, "align": "channel", "projector": False}),
        *[(f"paper direction, global λ={lam:g}", f"rev-global-l{lam:g}", {**rev, "align": "global", "kd_weight": lam})
          for lam in p.lambdas if lam != 1.0],
        # levers of the single CNN
        ("single CNN + negatives' CAM loss (w=1)", "cnn-neg", {"mode": "single", **cnn, "neg_cam_weight": 1.0}),
        *([(f"single CNN at {p.native} px", f"cnn-{p.native}", {"mode": "single", **cnn, "image_size": p.native}),
           (f"single CNN at {p.native} px + negatives' CAM loss", f"cnn-{p.native}-neg",
            {"mode": "single", **cnn, "image_size": p.native, "neg_cam_weight": 1.0})]
          if p.native != p.size else []),
    ]
    return [(title, name + suffix, over) for title, name, over in rows]


def needed_by(variants: set[str]) -> set[str]:
    """The runs that the runs ``variants`` are taught by (the ViT for T-S rows, the CNN for
    the paper's direction)."""
    need = set()
    for v in variants:
        if v.startswith("ts-"):
            need.add("vit")
        if v.startswith("rev-"):
            need.add("cnn")
    return need


def refiner_chains() -> list[tuple[str, tuple[str, ...]]]:
    """(title, chain) of the refiner section; ``threshold`` alone is the default t."""
    chains = [
        ("CAM argmax, background 1 − max (no refiner)", ()),
        ("threshold (default t)", ("threshold",)),
        ("threshold:background=power", ("threshold:background=power",)),
        ("threshold, IRN band lo=0.2 hi=0.5 (255 between)", ("threshold:lo=0.2,hi=0.5",)),
        ("gmm (per image)", ("gmm",)),
        ("gmm:input=cam+color", ("gmm:input=cam+color",)),
        (LABEL_FREE_GMM, (LABEL_FREE_GMM,)),
        ("threshold → crf (default: lattice, 2x2 pooled where smooth)", ("threshold", "crf")),
        ("threshold → crf:downsample=1 (exact dense)", ("threshold", "crf:downsample=1")),
        ("threshold → crf:mode=window,downsample=4", ("threshold", "crf:mode=window,downsample=4")),
        ("par → threshold", ("par", "threshold")),
        ("threshold → par", ("threshold", "par")),
        ("affinity (colour, no model) → threshold", ("affinity", "threshold")),
        (f"{LABEL_FREE_GMM} → crf", (LABEL_FREE_GMM, "crf")),
        ("threshold:background=power → crf", ("threshold:background=power", "crf")),
        # the smoke paper's post-processing order: CRF, then CRF + affinity (SAM needs a checkpoint)
        ("threshold → crf → affinity (colour)", ("threshold", "crf", "affinity")),
        ("threshold:background=power → crf → affinity (colour)",
         ("threshold:background=power", "crf", "affinity")),
    ]
    if pydensecrf_available():
        chains.insert(9, ("threshold → crf:backend=pydensecrf", ("threshold", "crf:backend=pydensecrf")))
    return chains


# -- scoring -------------------------------------------------------------------------------------

def score_chains(cams: Path, root: Path, chains: dict[str, Sequence[str]], key: str | None = None
                 ) -> dict[str, dict]:
    """mIoU, smoke IoU, precision, recall, coverage and images/s of each chain on the store's
    images, in memory (:mod:`pseudolabel.refine.api`): one read per image for every chain; a
    chain with a data-set fit (``gmm:scope=dataset``) is fitted first (its time included)."""
    states = iter_states(cams, key=key, images=root)
    gts = read_ground_truth(root, ids=states.ids)
    num = len(states.classes) + 1
    built, secs = {}, {}
    for name, spec in chains.items():
        t0 = time.perf_counter()
        chain = create_chain(spec)
        built[name] = fit_chain(chain, states) if any(r.needs_fit for r in chain) else chain
        secs[name] = time.perf_counter() - t0
    acc = {n: ConfusionAccumulator(num) for n in built}
    for state in states:
        gt = gts[state.image_id]
        for name, chain in built.items():
            t0 = time.perf_counter()
            mask = to_mask(apply_chain(chain, state))
            secs[name] += time.perf_counter() - t0
            acc[name].update(mask, gt)
    out = {}
    for name in built:
        m = acc[name].compute()
        out[name] = {"miou": float(m["miou"]), "fg_iou": float(np.nanmean(m["iou"][1:])),
                     "precision": float(np.nanmean(m["precision"][1:])),
                     "recall": float(np.nanmean(m["recall"][1:])),
                     "coverage": float(m["coverage"]),
                     "images_per_s": len(states) / max(secs[name], 1e-9)}
    return out


def oracle(cams: Path, root: Path, prefix: Sequence[str] = (), key: str | None = None
           ) -> tuple[float, dict, list[tuple[float, float]]]:
    """Best background threshold t on the ground truth after ``prefix``: (t, scores, curve)."""
    chains = {f"t={t}": (*prefix, f"threshold:t={t}") for t in SWEEP}
    res = score_chains(cams, root, chains, key)
    curve = [(t, res[f"t={t}"]["miou"]) for t in SWEEP]
    best_t = max(SWEEP, key=lambda t: res[f"t={t}"]["miou"])
    return best_t, res[f"t={best_t}"], curve


# -- the stages, cached in OUT ---------------------------------------------------------------------

def cached(path: Path, compute) -> dict:
    """The JSON in ``path``, computed and written (atomically) when missing."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        json.dump(value, fh, indent=1)
    return value


def trained(base: TrainConfig, over: dict, root: Path, run_dir: Path) -> dict:
    """Train ``run_dir`` unless it is finished; returns the last epoch's metrics."""
    done = run_dir / "bench-done"
    if not done.is_file():
        t0 = time.perf_counter()
        resume = (run_dir / "last.pt").is_file()
        train(replace(base, **over, resume=resume, overwrite=not resume), root, run_dir)
        done.write_text(f"{time.perf_counter() - t0:.1f}\n")
    last = json.loads((run_dir / "metrics.json").read_text())[-1]
    return {"ap": last.get("student/mAP"), "f1": last.get("student/mean_f1"),
            "train_s": float(done.read_text())}


def cams_of(run_dir: Path, root: Path, out: Path, p: Preset, **over) -> Path:
    """The CAM store of ``run_dir`` on the benchmark images (resumes when interrupted)."""
    cfg = MakeCamsConfig(split="bench_train", scales=p.scales, flip=True, batch_size=16,
                         workers=1, device="cpu", **over)
    return make_cams(cfg, root, run_dir, out)


# -- the table -------------------------------------------------------------------------------------

def fmt(v: float | None) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def markdown(results: dict, header: str) -> str:
    lines = [header, ""]
    if results.get("models"):
        lines += ["### Training variants (student CAM → masks)", "",
                  "| variant | val AP | oracle threshold: mIoU (t) | smoke P / R | "
                  f"label-free {LABEL_FREE_GMM}: mIoU | smoke P / R | "
                  f"label-free {' → '.join(RECOMMENDED)}: mIoU | smoke IoU | train s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        groups: dict[str, list[dict]] = {}
        for r in results["models"]:
            groups.setdefault(r["title"], []).append(r)
        for title, rs in groups.items():
            def agg(get, rs: list[dict] = rs, spread: bool = True) -> str:
                v = [x for x in (get(r) for r in rs) if x is not None]
                if not v:
                    return "–"
                pm = f" ± {(max(v) - min(v)) / 2:.3f}" if spread and len(v) > 1 else ""
                return fmt(float(np.mean(v))) + pm
            ts = sorted({f"{r['t']:g}" for r in rs})
            lines.append(
                f"| {title} | {agg(lambda r: r['ap'])} | {agg(lambda r: r['oracle']['miou'])} "
                f"({', '.join(ts)}) | {agg(lambda r: r['oracle']['precision'], spread=False)} / "
                f"{agg(lambda r: r['oracle']['recall'], spread=False)} | {agg(lambda r: r['gmm']['miou'])} | "
                f"{agg(lambda r: r['gmm']['precision'], spread=False)} / {agg(lambda r: r['gmm']['recall'], spread=False)} | "
                f"{agg(lambda r: r.get('rec', {}).get('miou'))} | {agg(lambda r: r.get('rec', {}).get('fg_iou'))} | "
                f"{np.mean([r['train_s'] for r in rs]):.0f} |")
        if any(len(rs) > 1 for rs in groups.values()):
            lines += ["", "mIoU and AP: mean ± half the range; precision / recall: means; over seeds "
                      f"{sorted({r['seed'] for r in results['models']})}."]
        lines.append("")
    if results.get("refiners"):
        lines += ["### Refiners on the single CNN's CAMs", "",
                  "| chain | mIoU | smoke IoU | smoke P / R | coverage | images/s |",
                  "|---|---|---|---|---|---|"]
        notes = ["", "Images/s here: the chain alone in this process on 160 px tiles (a data-set "
                 "fit's pass included). benchmarks/refine_speed.py measures the stage at 160 and 512 px."]
        for r in results["refiners"]:
            lines.append(f"| {r['title']} | {fmt(r['miou'])} | {fmt(r['fg_iou'])} | "
                         f"{fmt(r['precision'])} / {fmt(r['recall'])} | {fmt(r['coverage'])} | "
                         f"{r['images_per_s']:.1f} |")
        lines += [*notes, ""]
    if results.get("fusion"):
        lines += ["### Multi-layer CAM fusion, poor and good seeds (LayerCAM of features and the stage before)", "",
                  "| seeds | chain | mIoU | smoke P / R |", "|---|---|---|---|"]
        for r in results["fusion"]:
            lines.append(f"| {r['seeds']} | {r['title']} | {fmt(r['miou'])} | "
                         f"{fmt(r['precision'])} / {fmt(r['recall'])} |")
        lines.append("")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------

def prepare_root(data: str, out: Path, p: Preset) -> Path:
    """The benchmark's data root in OUT/data: a stratified subset of ``data``, or the demo set."""
    root = out / "data"
    if (root / "ImageSets" / "Segmentation" / "bench_train.txt").is_file():
        return root
    if data == "demo":
        from pseudolabel.data.demo import make_demo_data

        make_demo_data(root, n_images=p.limit + p.val_limit, size=128)
        ids = (root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
        val = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
        (root / "ImageSets" / "Segmentation" / "bench_train.txt").write_text("\n".join(ids) + "\n")
        (root / "ImageSets" / "Segmentation" / "bench_val.txt").write_text("\n".join(val) + "\n")
        return root
    src = Path(data).resolve()
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        make_subset(src, Path(tmp) / "data", p.limit, p.val_limit, seed=0)
        (Path(tmp) / "data" / "SegmentationClass").symlink_to(src / "SegmentationClass")
        (Path(tmp) / "data").rename(root)
    return root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "data" / "smoke-tiles"),
                        help="a data root with SegmentationClass, or 'demo' (built-in synthetic data)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cnn", default=CNN, help="timm name of the CNN")
    parser.add_argument("--vit", default=VIT, help="timm name of the ViT (trained from scratch)")
    parser.add_argument("--weights", default=str(SHARED / "weights" / "tf_efficientnet_lite0_in1k.pth"),
                        help="local pretrained weights of the CNN, or 'none'")
    parser.add_argument("--only", default="models,refiners,fusion")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", default="0",
                        help="comma-separated training seeds of the models section (mean ± half range)")
    parser.add_argument("--variants", default="",
                        help="only these run names of the models section (e.g. cnn,cnn-neg,rev-global-l1; "
                             "the runs they need train too); default: every row")
    parser.add_argument("--grid", choices=("layer", "finest"), default="layer",
                        help="the CAM stores' grid (make-cams --grid): each layer's stride, or the "
                             "finest view's (stride / largest scale)")
    args = parser.parse_args(argv)
    variants = {v for v in args.variants.split(",") if v}
    tag = "" if args.grid == "layer" else f"-{args.grid}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("pseudolabel", "timm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("PSEUDOLABEL_NO_PROGRESS", "1")
    torch.set_num_threads(args.threads)
    p = PRESETS[args.preset]
    seeds = [int(x) for x in args.seeds.split(",")]
    weights = None if args.weights == "none" else Path(args.weights)
    name = "demo" if args.data == "demo" else Path(args.data).name
    out = (args.out or HERE / "results" / f"quality-{name}-{args.preset}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = prepare_root(args.data, out, p)
    runs, stores, rows = out / "runs", out / "cams", out / "rows"
    only = set(args.only.split(","))
    base = TrainConfig(split="bench_train", val_split="bench_val", image_size=p.size,
                       epochs=p.epochs, batch_size=32, device="cpu", num_workers=1, lr=1e-3,
                       warmup_epochs=0.3, student=args.cnn, teacher=args.vit, amp=False)
    results: dict[str, list] = {"models": [], "refiners": [], "fusion": []}
    curves: dict[str, dict] = {}
    started = time.perf_counter()

    # models: train, make CAMs, score (the ViT trains before the students that need it)
    names_needed = {"cnn"} if only & {"refiners"} else set()
    for seed in seeds:
        suffix = "" if seed == 0 else f"-s{seed}"
        for title, run_name, over in model_rows(p, runs, args.cnn, args.vit, weights, suffix):
            if "models" not in only and run_name not in names_needed:
                continue
            if variants and run_name.removesuffix(suffix) not in (
                    variants | needed_by(variants) | names_needed):
                continue
            meta = trained(base, {**over, "seed": seed}, root, runs / run_name)
            if "models" not in only:
                continue

            def row(run_name=run_name, title=title, meta=meta, seed=seed) -> dict:
                store = cams_of(runs / run_name, root, stores / f"{run_name}{tag}.h5", p,
                                grid=args.grid)
                t, best, curve = oracle(store, root)
                res = score_chains(store, root, {"g": (LABEL_FREE_GMM,), "r": RECOMMENDED})
                return {"title": title, "run": run_name, "seed": seed, **meta, "t": t,
                        "oracle": best, "gmm": res["g"], "rec": res["r"], "curve": curve}

            r = cached(rows / f"model-{run_name}{tag}.json", row)
            r.setdefault("seed", seed)
            results["models"].append(r)
            log.info("%-45s seed %d  AP %s  oracle %.3f (t=%g)  gmm %.3f  %s %.3f (smoke %.3f)",
                     title, seed, fmt(r["ap"]), r["oracle"]["miou"], r["t"], r["gmm"]["miou"],
                     " → ".join(RECOMMENDED), r["rec"]["miou"], r["rec"]["fg_iou"])
    if results["models"]:
        by = {r["run"]: r for r in results["models"] if r["seed"] == seeds[0]}
        suffix0 = "" if seeds[0] == 0 else f"-s{seeds[0]}"
        for prefix, what in (("ts-spatial-l", "T-S spatial"), ("rev-global-l", "paper direction, global")):
            lam = sorted((float(k.removeprefix(prefix).removesuffix(suffix0)), v) for k, v in by.items()
                         if k.startswith(prefix))
            if lam:
                curves[f"mIoU against the KD weight λ ({what})"] = {"x": "λ", "scale": "log", "series": {
                    "oracle threshold": [(x, v["oracle"]["miou"]) for x, v in lam],
                    "label-free gmm": [(x, v["gmm"]["miou"]) for x, v in lam],
                    "val AP": [(x, v["ap"]) for x, v in lam]}}
        curves["mIoU against the background threshold t"] = {"x": "t", "series": {
            r["title"]: r["curve"] for r in by.values()}}

    # refiners on the single CNN's CAMs
    if "refiners" in only:
        store = cams_of(runs / "cnn", root, stores / f"cnn{tag}.h5", p, grid=args.grid)

        def refiner_rows() -> list[dict]:
            chains = refiner_chains()
            res = score_chains(store, root, {t: c for t, c in chains})
            t, best, _ = oracle(store, root)
            return [{"title": f"threshold, oracle t = {t:g}", **best}] + [
                {"title": title, **res[title]} for title, _ in chains]

        results["refiners"] = cached(rows / f"refiners{tag}.json", refiner_rows)
        for r in results["refiners"]:
            log.info("%-55s mIoU %.3f  %.1f img/s", r["title"], r["miou"], r["images_per_s"])

    # fusion with poor and good seeds
    if "fusion" in only:
        early = {"mode": "single", "student": args.cnn, "student_weights": weights, "epochs": 1,
                 "lr": base.lr / 10}
        for seeds, run_name, over in (("poor (1 epoch, lr/10)", "cnn-early", early),
                                      ("good (the single CNN)", "cnn", {"mode": "single", "student": args.cnn,
                                                                       "student_weights": weights})):
            meta = trained(base, over, root, runs / run_name)

            def fusion_rows(run_name=run_name, seeds=seeds, meta=meta) -> list[dict]:
                layer = fusion_layer(runs / run_name)
                store = cams_of(runs / run_name, root, stores / f"{run_name}-layers{tag}.h5", p,
                                method="layercam", layers=("features", layer), grid=args.grid)
                out_rows = []
                for title, prefix, key in (("features, oracle t", (), "student/features"),
                                           (f"{layer}, oracle t", (), f"student/{layer}"),
                                           ("fusion (mean) → oracle t", ("fusion",), None)):
                    t, best, _ = oracle(store, root, prefix, key=key)
                    out_rows.append({"seeds": f"{seeds}, AP {fmt(meta['ap'])}",
                                     "title": f"{title} = {t:g}", **best})
                res = score_chains(store, root, {"f": (LABEL_FREE_GMM,),
                                                 "fg": ("fusion", LABEL_FREE_GMM)},
                                   key="student/features")
                out_rows += [{"seeds": f"{seeds}, AP {fmt(meta['ap'])}",
                              "title": f"features → {LABEL_FREE_GMM}", **res["f"]},
                             {"seeds": f"{seeds}, AP {fmt(meta['ap'])}",
                              "title": f"fusion → {LABEL_FREE_GMM}", **res["fg"]}]
                return out_rows

            results["fusion"] += cached(rows / f"fusion-{run_name}{tag}.json", fusion_rows)

    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
               f"{args.threads} thread(s), CPU only")
    header = (f"## Quality ablations: {name}, preset {args.preset}\n\n"
              f"`python benchmarks/quality.py --data {args.data if args.data == 'demo' else name}"
              f" --preset {args.preset} --seeds {args.seeds} --grid {args.grid}"
              f"{' --variants ' + args.variants if variants else ''}` — {args.cnn} "
              f"({'pretrained: ' + Path(args.weights).name if weights else 'from scratch'}), "
              f"{args.vit} (from scratch); {p.limit} training images (pseudo-masks scored on "
              f"them), {p.val_limit} held out for AP, {p.size} px, {p.epochs} epoch(s), CAM scales "
              f"{', '.join(map(str, p.scales))} + flip, {args.grid} grid; {machine}; "
              f"{(time.perf_counter() - started) / 60:.0f} min this invocation.")
    text = markdown(results, header)
    (out / "quality.md").write_text(text + "\n")
    (out / "quality.json").write_text(json.dumps(
        {"preset": asdict(p), "data": args.data, "machine": machine, **results}, indent=1,
        default=str))
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    print(text)
    log.info("wrote %s, quality.json and curves.json (pseudolabel report --curves %s)",
             out / "quality.md", out / "curves.json")


if __name__ == "__main__":
    main()
