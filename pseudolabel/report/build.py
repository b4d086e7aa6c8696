"""``pseudolabel report``: one self-contained HTML page to look at before training on masks.

Sections (each appears when its inputs are given):
  scores     per-class IoU bars and the summary (masks + ground truth)
  training   loss / mAP curves from RUN_DIR/metrics.json
  threshold  mIoU against the background threshold t of plain CAM argmax (CAMs + ground truth)
  sweeps     any curve a benchmark wrote (e.g. mIoU against the KD weight λ), from --curves JSON:
             {title: {"x": axis label, "scale": "linear" | "log", "series": {name: [[x, y], ...]}}}
  gallery    image | CAM heat map | mask overlay | ground truth, worst first (by IoU with the
             ground truth, or by the share of ignored pixels without it)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from pseudolabel.config import save_config, to_dict
from pseudolabel.data import load_dataset, load_image, read_mask
from pseudolabel.data.masks import IGNORE
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_write, output_path
from pseudolabel.progress import progress
from pseudolabel.report.pictures import data_uri, heatmap_overlay, mask_overlay, resize, thumbnail
from pseudolabel.report.svg import bar_chart, line_chart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows; defaults suit a few thousand images."""

    split: str | None = None
    gallery: int = 48
    thumb: int = 192
    key: str | None = None
    curve_images: int = 200
    thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
    title: str = "pseudolabel report"


def _threshold_curve(store: Any, dataset: Any, key: str, cfg: ReportConfig) -> dict[str, list]:
    """mIoU of argmax([t, CAMs]) for each background threshold t, on the first images."""
    from pseudolabel.evaluate import confusion_matrix, metrics_from_confusion

    by_id = dataset.by_id()
    k1 = dataset.num_classes + 1
    cms = np.zeros((len(cfg.thresholds), k1, k1), dtype=np.int64)
    ids = [i for i in store.ids() if i in by_id][: cfg.curve_images]
    for image_id in progress(ids, desc="threshold curve"):
        gt = dataset.read_gt(by_id[image_id])
        if gt is None:
            continue
        rec = store.read(image_id)
        cams = rec.cams[key]
        up = np.stack([resize(c.astype(np.float32), gt.shape) for c in cams]) if len(cams) else \
            np.zeros((0, *gt.shape), np.float32)
        top = up.max(0) if len(up) else np.zeros(gt.shape, np.float32)
        arg = (np.asarray(rec.class_indices)[up.argmax(0)] + 1) if len(up) else top.astype(int)
        for i, t in enumerate(cfg.thresholds):
            pred = np.where(top >= t, arg, 0).astype(np.uint8)
            cms[i] += confusion_matrix(pred, gt, k1)
    miou = [metrics_from_confusion(cm)["miou"] for cm in cms]
    return {"mIoU": list(zip(cfg.thresholds, miou, strict=True))}


def _summary_table(metrics: dict[str, Any], classes: list[str]) -> str:
    rows = "".join(
        f"<tr><td>{escape(c)}</td><td>{metrics['iou'][i]:.3f}</td>"
        f"<td>{metrics['precision'][i]:.3f}</td><td>{metrics['recall'][i]:.3f}</td></tr>"
        for i, c in enumerate(classes))
    return (f"<p><b>mIoU {metrics['miou']:.4f}</b> · coverage {metrics.get('coverage', 1.0):.3f}"
            f"</p><table><tr><th>class</th><th>IoU</th><th>precision</th><th>recall</th></tr>"
            f"{rows}</table>")


def run(
    config: ReportConfig,
    out: str | Path,
    *,
    masks: str | Path | None = None,
    gt: str | Path | None = None,
    cams: str | Path | None = None,
    run_dir: str | Path | None = None,
    images: str | Path | None = None,
    curves: str | Path | None = None,
) -> Path:
    """Write the HTML report to ``out``; returns its path."""
    out = Path(out)
    if masks is None and run_dir is None and cams is None:
        raise BadInputError("nothing to report", fix="give a mask folder, --cams or --run")
    sections: list[str] = []
    dataset = None
    image_root = images or gt
    if gt is not None:
        dataset = load_dataset(gt, config.split, require_labels=False)
        if not dataset.has_gt:
            raise BadInputError("the ground-truth root has no SegmentationClass/ masks", path=gt)
    elif image_root is not None:
        dataset = load_dataset(image_root, config.split, require_labels=False)
    classes = ["background", *dataset.classes] if dataset is not None else []

    # training curves
    if run_dir is not None:
        metrics_file = Path(run_dir) / "metrics.json"
        if metrics_file.is_file():
            rows = json.loads(metrics_file.read_text())
            rows = rows.get("epochs", rows) if isinstance(rows, dict) else rows
            charts = []
            numeric = sorted({k for r in rows for k, v in r.items()
                              if isinstance(v, (int, float)) and k != "epoch"})
            for group in ("loss", "map", "f1"):
                keys = [k for k in numeric if group in k.lower()]
                if keys:
                    charts.append(line_chart(
                        {k: [(r.get("epoch", i), float(r[k])) for i, r in enumerate(rows) if k in r]
                         for k in keys}, title=group, xlabel="epoch"))
            sections.append("<h2>Training</h2>" + "".join(charts))
        else:
            log.info("no metrics.json in %s: no training curves", run_dir)

    # scores
    per_image: dict[str, float] = {}
    store = None
    if cams is not None:
        from pseudolabel.store import CamStore
        from pseudolabel.store.keys import resolve_key

        store = CamStore.open(cams)
    key = resolve_key(store.keys, config.key, path=cams) if store is not None else config.key
    if masks is not None:
        mask_dir = Path(masks)
        if not mask_dir.is_dir():
            raise BadInputError("mask folder does not exist", path=mask_dir)
        if dataset is not None and dataset.has_gt:
            from pseudolabel.evaluate import ConfusionAccumulator, foreground_iou

            acc = ConfusionAccumulator(len(classes))
            for sample in progress(dataset.samples, desc="scoring masks"):
                path = output_path(mask_dir, sample.id, ".png")
                gt_mask = dataset.read_gt(sample)
                if not path.is_file() or gt_mask is None:
                    continue
                iou = foreground_iou(acc.update(read_mask(path), gt_mask))
                per_image[sample.id] = 1.0 if iou != iou else iou  # nothing to find, nothing found
            if not per_image:
                raise BadInputError("no mask in the folder matches an image of the data set",
                                    path=mask_dir, fix="check --gt and --split")
            metrics = acc.compute()
            sections.insert(0, "<h2>Scores</h2>" + _summary_table(metrics, classes) + bar_chart(
                classes, [float(v) for v in metrics["iou"]], title="IoU per class"))
        else:
            for p in sorted(mask_dir.rglob("*.png")):
                if p.name.startswith("."):
                    continue
                m = read_mask(p)
                per_image[p.relative_to(mask_dir).with_suffix("").as_posix()] = -float(
                    (m == IGNORE).mean())

    if store is not None and dataset is not None and dataset.has_gt and key is not None:
        curve = _threshold_curve(store, dataset, key, config)
        best_t, best = max(curve["mIoU"], key=lambda p: (p[1] if p[1] == p[1] else -1))
        sections.append(f"<h2>Threshold</h2><p>Plain CAM argmax with background threshold t on "
                        f"{escape(key)}: best mIoU {best:.3f} at t = {best_t} (an oracle: it "
                        f"uses the ground truth).</p>"
                        + line_chart(curve, title="mIoU against t", xlabel="t"))
    if curves is not None:
        data = json.loads(Path(curves).read_text())
        for name, spec in data.items():
            sections.append(f"<h2>{escape(name)}</h2>" + line_chart(
                {k: [tuple(p) for p in v] for k, v in spec["series"].items()},
                title=name, xlabel=spec.get("x", ""), log_x=spec.get("scale") == "log"))

    # gallery, worst first
    if per_image or store is not None:
        order = sorted(per_image, key=lambda i: per_image[i]) if per_image else store.ids()
        by_id = dataset.by_id() if dataset is not None else {}
        cells = []
        for image_id in progress(order[: config.gallery], desc="gallery"):
            sample = by_id.get(image_id)
            if sample is None:
                continue
            image = load_image(sample.image)
            row = [("image", image)]
            if store is not None and image_id in store and key is not None:
                rec = store.read(image_id)
                cam = rec.cams[key].max(0) if len(rec.class_indices) else np.zeros((2, 2))
                row.append((f"CAM {key}", heatmap_overlay(image, cam)))
            if masks is not None:
                path = output_path(masks, image_id, ".png")
                if path.is_file():
                    row.append(("mask", mask_overlay(image, read_mask(path))))
            gt_mask = dataset.read_gt(sample) if dataset is not None and dataset.has_gt else None
            if gt_mask is not None:
                row.append(("ground truth", mask_overlay(image, gt_mask)))
            score = per_image.get(image_id)
            caption = escape(image_id) + (
                "" if score is None else (f" · IoU {score:.3f}" if score >= 0 else
                                          f" · ignored {-score:.1%}"))
            if sample.labels:
                caption += " · " + escape(" ".join(dataset.classes[i] for i in sample.labels))
            figs = "".join(f'<figure><img src="{data_uri(thumbnail(a, config.thumb))}" '
                           f'alt="{escape(n)}"><figcaption>{escape(n)}</figcaption></figure>'
                           for n, a in row)
            cells.append(f'<div class="row"><div class="cap">{caption}</div>{figs}</div>')
        what = "worst IoU first" if any(v >= 0 for v in per_image.values()) else \
            "most ignored pixels first"
        sections.append(f"<h2>Gallery ({what})</h2>" + "".join(cells))
    if store is not None:
        store.close()

    page = _PAGE.format(title=escape(config.title), body="\n".join(sections),
                        config=escape(json.dumps(to_dict(config))))
    with atomic_write(out, "w", encoding="utf-8") as fh:
        fh.write(page)
    save_config({"report": to_dict(config), "masks": masks, "gt": gt, "cams": cams,
                 "run": run_dir}, out.with_suffix(".yaml"))
    return out


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 18px; margin-top: 28px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 10px; text-align: right; }}
.row {{ display: flex; flex-wrap: wrap; align-items: flex-start; gap: 6px; margin: 10px 0;
        border-top: 1px solid #eee; padding-top: 6px; }}
.cap {{ width: 100%; font-size: 13px; }}
figure {{ margin: 0; }} figcaption {{ font-size: 11px; color: #555; }}
img {{ image-rendering: auto; display: block; }}
</style></head>
<body><h1>{title}</h1>
{body}
<details><summary>configuration</summary><pre>{config}</pre></details>
</body></html>
"""


