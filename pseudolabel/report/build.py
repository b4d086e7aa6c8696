"""``pseudolabel report``: one self-contained HTML page to look at before training on masks.

Sections, top to bottom (each appears when its inputs are given):
  summary    one line: the chain of these masks, images scored, mIoU, coverage, the best chain
  chains     the refine chains compared on the same ground truth: these masks and every chain
             beside them (MASKS/../compare/<chain>/, as ``pseudolabel demo`` writes them), or a
             --chains JSON; context leakage per class when known (context masks in the data set,
             or ``context_leakage`` in the JSON)
  scores     per-class IoU, precision, recall (and context leakage), IoU bars
  gallery    the worst and the best images side by side: image | CAM heat map (with its colour
             bar) | mask | ground truth; masks filled and outlined so they show on any colour
  training   loss and validation scores from RUN_DIR/metrics.json (the charts of curves.svg)
  threshold  mIoU against the background threshold t of plain CAM argmax (CAMs + ground truth)
  sweeps     any curve a benchmark wrote (e.g. mIoU against the KD weight λ), from --curves JSON:
             {title: {"x": axis label, "scale": "linear" | "log", "series": {name: [[x, y], ...]}}}

The chains JSON maps a chain's name to its scores: the output of ``pseudolabel evaluate --json``
(or that file's name, relative to the JSON), e.g. ``{"threshold": "threshold.json", ...}``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pseudolabel.config import save_config, to_dict
from pseudolabel.data import load_dataset, load_image, read_mask
from pseudolabel.data.masks import CONTEXT_DIR, IGNORE
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_write, output_path
from pseudolabel.progress import progress
from pseudolabel.report.config import ReportConfig
from pseudolabel.report.curves import training_charts
from pseudolabel.report.pictures import (
    CAM_ANCHORS,
    data_uri,
    heatmap_overlay,
    mask_overlay,
    overlay_colour,
    resize,
    thumbnail,
)
from pseudolabel.report.svg import bar_chart, colour_bar, line_chart
from pseudolabel.runtime import claim_output, resolve_output

log = logging.getLogger(__name__)

#: The folder beside a mask folder where ``pseudolabel demo`` / ``run`` put the compared chains.
COMPARE_DIR = "compare"


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


def _fmt(value: Any) -> str:
    """A score with 3 decimals; '-' for a missing or NaN one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.3f}"


def short_spec(spec: str) -> str:
    """A refiner spec with only its non-default parameters ("gmm:components=3,scope=dataset")."""
    from pseudolabel.refine import create_refiner

    try:
        refiner = create_refiner(spec)
        given, default = to_dict(refiner.params), to_dict(type(refiner.params)())
    except Exception:  # a plugin that is gone, or parameters without defaults: keep the text
        return spec
    changed = ",".join(f"{k}={v}" for k, v in given.items() if default.get(k) != v)
    return refiner.name + (f":{changed}" if changed else "")


def chain_name(mask_dir: str | Path) -> str | None:
    """The refiners of MASK_DIR/refine.yaml joined by arrows ("threshold:t=0.3 → crf"), each
    with its non-default parameters; None without a readable refine.yaml."""
    path = Path(mask_dir) / "refine.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    refiners = data.get("refiners") if isinstance(data, dict) else None
    if not isinstance(refiners, list) or not refiners:
        return None
    return " → ".join(short_spec(str(r)) for r in refiners)


def load_chains(path: str | Path) -> dict[str, dict]:
    """{chain: scores} from a JSON file mapping each chain to ``evaluate --json`` output (a dict)
    or to the name of such a file (relative to the JSON's folder)."""
    path = Path(path)

    def read(file: Path, what: str) -> Any:
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BadInputError(f"cannot read {what} ({type(exc).__name__})", path=file,
                                fix="give the JSON written by pseudolabel evaluate --json") from None

    data = read(path, "the chains JSON")
    if not isinstance(data, dict) or not data:
        raise BadInputError("the chains JSON does not map chain names to scores", path=path,
                            fix='write {"CHAIN": "scores.json" or evaluate --json output, ...}')
    chains = {}
    for name, value in data.items():
        if isinstance(value, str):
            value = read(path.parent / value, f"the scores of chain {name!r}")
        if not isinstance(value, dict) or not isinstance(value.get("per_class"), dict):
            raise BadInputError(f"chain {name!r} has no scores (miou, per_class)", path=path,
                                fix="give each chain the output of pseudolabel evaluate --json")
        chains[str(name)] = value
    return chains


def _chains_beside(mask_dir: Path, dataset: Any) -> dict[str, dict]:
    """{chain: evaluate dict} of every mask folder in MASK_DIR/../compare, scored like MASK_DIR."""
    from pseudolabel.evaluate.stage import EvaluateConfig, evaluate

    compare = mask_dir.parent / COMPARE_DIR
    chains: dict[str, dict] = {}
    if not compare.is_dir():
        return chains
    for folder in sorted(p for p in compare.iterdir() if p.is_dir()):
        try:
            result = evaluate(folder, dataset, EvaluateConfig(allow_missing=True))
        except BadInputError as exc:
            log.warning("chain %s left out of the report's table: %s", folder.name,
                        exc.one_line())
            continue
        chains[chain_name(folder) or folder.name] = result.to_dict()
    return chains


def _chain_table(chains: Mapping[str, dict], this: str | None) -> str:
    """The chains, best mIoU first: mIoU, IoU and context leakage per class, coverage."""
    first = next(iter(chains.values()))
    classes = [c for c in first.get("classes", list(first["per_class"]))][1:]
    leak = any(d.get("context_leakage") for d in chains.values())
    order = sorted(chains, key=lambda n: -(chains[n].get("miou") or -1.0))
    head = ("<tr><th>refine chain</th><th>mIoU</th>"
            + "".join(f"<th>{escape(c)} IoU</th>" for c in classes) + "<th>coverage</th>"
            + "".join(f"<th>{escape(c)} context leakage</th>" for c in classes if leak) + "</tr>")
    rows = []
    for rank, name in enumerate(order):
        d = chains[name]
        per = d["per_class"]
        mark = " ◀ these masks" if this is not None and name == this else ""
        cells = ([f'<td class="name">{escape(name)}{mark}</td>', f"<td>{_fmt(d.get('miou'))}</td>"]
                 + [f"<td>{_fmt(per.get(c, {}).get('iou'))}</td>" for c in classes]
                 + [f"<td>{_fmt(d.get('coverage'))}</td>"]
                 + [f"<td>{_fmt((d.get('context_leakage') or {}).get(c))}</td>"
                    for c in classes if leak])
        cls = ' class="best"' if rank == 0 else (' class="this"' if mark else "")
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    note = ("<p class=\"note\">Best mIoU first (bold). Context leakage: the share of context "
            "pixels (e.g. chimneys) labelled as the class; lower is better.</p>" if leak else
            "<p class=\"note\">Best mIoU first (bold).</p>")
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _summary_table(metrics: dict[str, Any], classes: Sequence[str],
                   leakage: Mapping[str, float]) -> str:
    leak = bool(leakage)
    rows = "".join(
        f"<tr><td class=\"name\">{escape(c)}</td><td>{_fmt(metrics['iou'][i])}</td>"
        f"<td>{_fmt(metrics['precision'][i])}</td><td>{_fmt(metrics['recall'][i])}</td>"
        + (f"<td>{_fmt(leakage.get(c)) if i else ''}</td>" if leak else "") + "</tr>"
        for i, c in enumerate(classes))
    return ("<table><tr><th>class</th><th>IoU</th><th>precision</th><th>recall</th>"
            + ("<th>context leakage</th>" if leak else "") + f"</tr>{rows}</table>")


def _legend(classes: Sequence[str]) -> str:
    """The CAM colour bar and the overlay colours of the classes (and of ignored pixels)."""
    bar = colour_bar([tuple(int(v) for v in c) for c in CAM_ANCHORS], title="CAM heat map",
                     width=200)
    swatches = "".join(
        f'<span class="sw"><i style="background:rgb{overlay_colour(i)};'
        f'outline:1px solid #000;border:1px solid #fff"></i>{escape(c)}</span>'
        for i, c in enumerate(classes) if i > 0)
    swatches += ('<span class="sw"><i style="background:repeating-linear-gradient(45deg,#c8c8c8 '
                 '0 3px,transparent 3px 6px)"></i>ignored (255)</span>')
    return (f'<div class="legend">{bar}<div>CAM: each class\'s map divided by its maximum, the '
            f'highest of the image\'s classes shown.<br>masks: {swatches}</div></div>')


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
    chains: str | Path | None = None,
) -> Path:
    """Write the HTML report to ``out``; returns its path.

    ``chains``: a JSON of chain scores (module docstring); without it, the mask folders in
    MASKS/../compare are scored when there is ground truth.
    """
    out = resolve_output(out)  # checked before the work, claimed when written
    if masks is None and run_dir is None and cams is None:
        raise BadInputError("nothing to report", fix="give a mask folder, --cams or --run")
    dataset = None
    image_root = images or gt
    if gt is not None:
        dataset = load_dataset(gt, config.split, require_labels=False)
        if not dataset.has_gt:
            raise BadInputError("the ground-truth root has no SegmentationClass/ masks", path=gt,
                                fix="put them in ROOT/SegmentationClass/<id>.png")
    elif image_root is not None:
        dataset = load_dataset(image_root, config.split, require_labels=False)
    classes = ["background", *dataset.classes] if dataset is not None else []
    glance: list[str] = []
    top: list[str] = []  # chains and scores
    sections: list[str] = []  # after the gallery

    # scores: these masks, then the chains beside them
    per_image: dict[str, float] = {}
    this = chain_name(masks) if masks is not None else None
    if this:
        glance.append(f"masks: <b>{escape(this)}</b>")
    table: dict[str, dict] = load_chains(chains) if chains is not None else {}
    if masks is not None:
        mask_dir = Path(masks)
        if not mask_dir.is_dir():
            raise BadInputError("mask folder does not exist", path=mask_dir,
                                fix="give the MASK_DIR that pseudolabel refine wrote")
        if dataset is not None and dataset.has_gt:
            from pseudolabel.evaluate.stage import EvaluateConfig, evaluate

            result = evaluate(mask_dir, dataset,
                              EvaluateConfig(worst=max(len(dataset), 1), allow_missing=True))
            per_image = dict(result.worst)  # foreground IoU of every image with something to find
            metrics = result.metrics
            glance.append(f"{metrics['images']} images scored · mIoU <b>{_fmt(metrics['miou'])}"
                          f"</b> · coverage {_fmt(metrics['coverage'])}")
            top.append("<h2>Scores</h2>" + _summary_table(metrics, classes, result.leakage)
                       + bar_chart(classes, [float(v) for v in metrics["iou"]],
                                   title="IoU per class"))
            if chains is None:
                beside = _chains_beside(mask_dir, dataset)
                if beside:
                    table = {this or mask_dir.name: result.to_dict(), **beside}
        else:
            for p in sorted(mask_dir.rglob("*.png")):
                if p.name.startswith(".") or p.parent.name == "scores":
                    continue
                m = read_mask(p)
                per_image[p.relative_to(mask_dir).with_suffix("").as_posix()] = -float(
                    (m == IGNORE).mean())
    if table:
        best = max(table, key=lambda n: table[n].get("miou") or -1.0)
        glance.append(f"best chain: <b>{escape(best)}</b> (mIoU {_fmt(table[best].get('miou'))})")
        top.insert(0, "<h2>Refine chains</h2>" + _chain_table(table, this))

    store = None
    if cams is not None:
        from pseudolabel.store import CamStore
        from pseudolabel.store.keys import resolve_key

        store = CamStore.open(cams)
    key = resolve_key(store.keys, config.key, path=cams) if store is not None else config.key
    try:
        gallery = _gallery(config, per_image, store, key, dataset, masks, classes,
                           scored=bool(dataset is not None and dataset.has_gt and masks))
        if store is not None and dataset is not None and dataset.has_gt and key is not None:
            curve = _threshold_curve(store, dataset, key, config)
            best_t, best_m = max(curve["mIoU"], key=lambda p: (p[1] if p[1] == p[1] else -1))
            sections.append(
                f"<h2>Threshold</h2><p>Plain CAM argmax with background threshold t on "
                f"{escape(key)}: best mIoU {best_m:.3f} at t = {best_t} (an oracle: it uses the "
                f"ground truth).</p>" + line_chart(curve, title="mIoU against t", xlabel="t"))
    finally:
        if store is not None:
            store.close()

    if run_dir is not None:
        metrics_file = Path(run_dir) / "metrics.json"
        if metrics_file.is_file():
            rows = json.loads(metrics_file.read_text())
            rows = rows.get("epochs", rows) if isinstance(rows, dict) else rows
            sections.insert(0, "<h2>Training</h2>" + "".join(training_charts(rows)))
        else:
            log.info("no metrics.json in %s: no training curves", run_dir)
    if curves is not None:
        data = json.loads(Path(curves).read_text())
        for name, spec in data.items():
            sections.append(f"<h2>{escape(name)}</h2>" + line_chart(
                {k: [tuple(p) for p in v] for k, v in spec["series"].items()},
                title=name, xlabel=spec.get("x", ""), log_x=spec.get("scale") == "log"))

    body = "\n".join([f'<p class="glance">{" · ".join(glance)}</p>' if glance else "",
                      *top, gallery, *sections])
    page = _PAGE.format(title=escape(config.title), body=body,
                        config=escape(json.dumps(to_dict(config))))
    # the options under their names: `pseudolabel report --config OUT.yaml` replays it
    # (OUT + .yaml: report.html.yaml, never another stage's record such as refine.yaml)
    inputs = {"masks": masks, "gt": gt, "images": images, "cams": cams, "run": run_dir,
              "curves": curves, "chains": chains}
    with claim_output(out, kind="file", ours=is_report):
        with atomic_write(out, "w", encoding="utf-8") as fh:
            fh.write(page)
        save_config({**to_dict(config), **{k: None if v is None else str(Path(v).resolve())
                                           for k, v in inputs.items()}}, options_path(out))
    return out


def is_report(path: Path) -> bool:
    """Whether ``path`` is a page this command wrote (its marker, or its options beside it)."""
    if options_path(path).is_file():
        return True
    with open(path, "rb") as fh:
        return _MARKER.encode() in fh.read(4096)


def options_path(out: str | os.PathLike) -> Path:
    """Where the report at ``out`` saves its options: ``OUT.yaml`` (``report.html.yaml``)."""
    out = Path(out)
    return out.with_name(out.name + ".yaml")


def _gallery(config: ReportConfig, per_image: Mapping[str, float], store: Any, key: str | None,
             dataset: Any, masks: str | Path | None, classes: Sequence[str], *,
             scored: bool) -> str:
    """The worst and the best images in two columns (one column of store ids without masks).

    per_image: foreground IoU when ``scored`` (masks against ground truth), else minus the share
    of ignored pixels. No gallery without a data set root (the images).
    """
    if (not per_image and store is None) or dataset is None:
        return ""
    by_id = dataset.by_id()
    if per_image:
        order = sorted(per_image, key=lambda i: (per_image[i], i))  # worst first
        n = min(len(order), config.gallery)
        worst = order[: (n + 1) // 2]
        best = [i for i in reversed(order) if i not in set(worst)][: n - len(worst)]
        titles = (("worst: lowest foreground IoU", "best: highest foreground IoU") if scored
                  else ("most ignored pixels", "fewest ignored pixels"))
        columns = [(titles[0], worst), (titles[1], best)]
    else:
        columns = [("images", store.ids()[: config.gallery])]

    def row(image_id: str) -> str:
        sample = by_id.get(image_id)
        if sample is None:
            return ""
        image = thumbnail(load_image(sample.image), config.thumb)
        figs = [("image", image)]
        if store is not None and image_id in store and key is not None:
            rec = store.read(image_id)
            cam = rec.cams[key].max(0) if len(rec.class_indices) else np.zeros((2, 2))
            figs.append((f"CAM {key}", heatmap_overlay(image, cam)))
        pred = None
        if masks is not None:
            path = output_path(masks, image_id, ".png")
            if path.is_file():
                pred = read_mask(path)
                figs.append(("mask", mask_overlay(image, pred)))
        gt_mask = dataset.read_gt(sample) if dataset is not None and dataset.has_gt else None
        if gt_mask is not None:
            figs.append(("ground truth", mask_overlay(image, gt_mask)))
        score = per_image.get(image_id)
        caption = escape(image_id) + (
            "" if score is None else (f" · IoU {score:.3f}" if scored else
                                      f" · ignored {abs(score):.1%}"))
        leak = _image_leakage(dataset, image_id, pred, gt_mask, classes)
        if leak:
            caption += " · context leakage " + escape(leak)
        if sample.labels:
            caption += " · " + escape(" ".join(dataset.classes[i] for i in sample.labels))
        cells = "".join(f'<figure><img src="{data_uri(a)}" alt="{escape(n)}"><figcaption>'
                        f'{escape(n)}</figcaption></figure>' for n, a in figs)
        return f'<div class="row"><div class="cap">{caption}</div>{cells}</div>'

    html = []
    for title, ids in columns:
        rows = "".join(row(i) for i in progress(ids, desc="gallery"))
        html.append(f'<div class="side"><h3>{escape(title)}</h3>{rows}</div>')
    legend = _legend(classes) if classes else ""
    return f'<h2>Gallery</h2>{legend}<div class="sides">{"".join(html)}</div>'


def _image_leakage(dataset: Any, image_id: str, pred: np.ndarray | None,
                   gt: np.ndarray | None, classes: Sequence[str]) -> str:
    """The context leakage of one image's mask ("0.450", or "smoke 0.45, rails 0.10" with several
    classes); "" without a context mask (ROOT/SegmentationContext/<id>.png) or a mask."""
    if dataset is None or pred is None:
        return ""
    path = output_path(Path(dataset.root) / CONTEXT_DIR, image_id, ".png")
    if not path.is_file():
        return ""
    from pseudolabel.evaluate.metrics import context_counts, context_leakage

    context = read_mask(path)
    if context.shape != pred.shape or (gt is not None and gt.shape != pred.shape):
        return ""
    share = context_leakage(context_counts(pred, context, len(classes), gt))[1:]
    named = [(c, v) for c, v in zip(classes[1:], share, strict=True) if v == v]
    if len(classes) == 2:
        return f"{named[0][1]:.3f}" if named else ""
    return ", ".join(f"{c} {v:.2f}" for c, v in named if v > 0)


_MARKER = '<meta name="generator" content="pseudolabel report">'
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="pseudolabel report">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 18px; margin-top: 26px; }}
h3 {{ font-size: 15px; margin: 4px 0; }}
.glance {{ font-size: 15px; background: #f3f6fa; padding: 8px 12px; border-radius: 6px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 10px; text-align: right; }}
td.name {{ text-align: left; }} tr.best td {{ font-weight: bold; }}
tr.this td {{ background: #fff8dc; }} .note {{ font-size: 12px; color: #555; }}
.legend {{ display: flex; flex-wrap: wrap; gap: 24px; align-items: center; font-size: 12px; }}
.sw {{ margin-right: 12px; }} .sw i {{ display: inline-block; width: 14px; height: 14px;
        vertical-align: middle; margin-right: 4px; }}
.sides {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
          gap: 18px; }}
.row {{ display: flex; flex-wrap: wrap; align-items: flex-start; gap: 4px; margin: 8px 0;
        border-top: 1px solid #eee; padding-top: 4px; }}
.cap {{ width: 100%; font-size: 12px; }}
figure {{ margin: 0; }} figcaption {{ font-size: 11px; color: #555; }}
img {{ image-rendering: auto; display: block; }}
</style></head>
<body><h1>{title}</h1>
{body}
<details><summary>configuration</summary><pre>{config}</pre></details>
</body></html>
"""
