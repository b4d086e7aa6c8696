"""The whole pipeline in one call: train -> make-cams -> refine -> evaluate (-> report).

``run(PipelineConfig(...), root, out)`` is the Python API a user scripts; ``pseudolabel run``
builds the config from a named preset (:mod:`pseudolabel.presets`), an optional config file and
the command's options (:func:`pipeline_config`); ``pseudolabel demo`` runs it on the built-in
synthetic smoke data. Each stage keeps its own resume logic, so rerunning an interrupted
pipeline with the same options continues it.

    OUT/pipeline.yaml   the resolved configuration (``pseudolabel run --config`` replays it)
    OUT/run/            train's RUN_DIR
    OUT/cams.h5         make-cams' store
    OUT/masks/          the final masks (refine; selftrain's when ``selftrain`` is on)
    OUT/refined/        refine's masks when ``selftrain`` is on (scored beside the final ones)
    OUT/compare/<chain> masks of the chains of ``compare``, scored beside them
    OUT/evaluate.json   the masks' scores (when the data set has ground truth)
    OUT/report.html     the report
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pseudolabel.cams.stage import MakeCamsConfig
from pseudolabel.config import from_dict, load_config_file, save_config
from pseudolabel.data.demo import DemoConfig
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate.stage import EvalResult, EvaluateConfig
from pseudolabel.io import atomic_write
from pseudolabel.refine.stage import RefineConfig
from pseudolabel.report.build import ReportConfig
from pseudolabel.selftrain.config import SelfTrainConfig
from pseudolabel.train.config import TrainConfig

log = logging.getLogger(__name__)

CONFIG_NAME = "pipeline.yaml"

#: The label-free chain that came closest to the ground-truth-tuned threshold on both the demo
#: data and a smoke-tiles subset (chosen among six gmm variants by their mIoU: say so when citing).
LABEL_FREE_GMM = "gmm:components=3,scope=dataset"


@dataclass(frozen=True)
class PipelineConfig:
    """One frozen config per stage.

    ``refine`` makes the masks (OUT/masks); each chain of ``compare`` (refiners joined by "+",
    e.g. ``"fusion+gmm"``) is also run, into OUT/compare/<chain>, and scored beside it.
    ``selftrain`` (None: off): a segmenter trained on refine's masks (then in OUT/refined,
    scored beside the final ones) writes the final masks (OUT/masks); its split is make-cams'.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    cams: MakeCamsConfig = field(default_factory=MakeCamsConfig)
    refine: RefineConfig = field(default_factory=lambda: RefineConfig(refiners=("gmm",)))
    compare: tuple[str, ...] = ()
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: bool = True
    selftrain: SelfTrainConfig | None = None


#: ``pseudolabel run``'s stage options -> the config fields they set (one option may set the
#: same value in several stages: ``--device`` for train and make-cams).
RUN_OPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "mode": (("train", "mode"),),
    "student": (("train", "student"),),
    "student_weights": (("train", "student_weights"),),
    "teacher": (("train", "teacher"),),
    "teacher_weights": (("train", "teacher_weights"),),
    "epochs": (("train", "epochs"),),
    "image_size": (("train", "image_size"),),
    "output_stride": (("train", "output_stride"),),
    "batch_size": (("train", "batch_size"), ("cams", "batch_size")),
    "lr": (("train", "lr"),),
    "seed": (("train", "seed"),),
    "split": (("train", "split"), ("cams", "split")),
    "val_split": (("train", "val_split"),),
    "scales": (("cams", "scales"),),
    "refiners": (("refine", "refiners"),),
    "key": (("refine", "key"),),
    "device": (("train", "device"), ("cams", "device"), ("selftrain", "device")),
    "workers": (("train", "num_workers"), ("cams", "workers"), ("refine", "workers"),
                ("selftrain", "workers")),
    "skip_bad": (("train", "skip_bad"), ("cams", "skip_bad"), ("refine", "skip_bad"),
                 ("selftrain", "skip_bad")),
}
#: Sections that may be off (None); an option reaches them only when they are on.
OPTIONAL_SECTIONS = frozenset({"selftrain"})


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def pipeline_config(preset: str | None = None, config_file: str | os.PathLike | None = None,
                    selftrain: bool | None = None, **options: Any) -> PipelineConfig:
    """The config of ``pseudolabel run``: the preset, then the file, then the options.

    Args:
        preset: a name of :func:`pseudolabel.presets.names` (None: :data:`presets.DEFAULT`).
        config_file: a YAML/JSON file of the same shape as a preset (``train:``, ``cams:``, ...;
            ``OUT/pipeline.yaml`` of an earlier run replays it); its keys win over the preset's.
        selftrain: True: the ``selftrain`` stage on (with the preset's or the file's section,
            else the defaults), False: off, None: as the preset and the file say.
        options: values of :data:`RUN_OPTIONS` (None = not given); they win over both.
    """
    from pseudolabel import presets

    data = presets.load_preset(preset or presets.DEFAULT)
    where = f"preset {preset or presets.DEFAULT}"
    if config_file is not None:
        data = _merge(data, load_config_file(config_file))
        where = "the config file" if preset is None else f"preset {preset} + the config file"
    if selftrain is not None:
        section = data.get("selftrain")
        data = {**data, "selftrain": (section if section is not None else {}) if selftrain
                else None}
    for name, value in options.items():
        if name not in RUN_OPTIONS:
            raise TypeError(f"unknown pipeline option {name!r}")
        if value is None:
            continue
        for stage, key in RUN_OPTIONS[name]:
            if stage in OPTIONAL_SECTIONS and data.get(stage) is None:
                continue
            # workers=0 means "in this process": the refine stage says that with 1
            v = max(int(value), 1) if (stage, key) == ("refine", "workers") else value
            data = _merge(data, {stage: {key: v}})
    try:
        return from_dict(PipelineConfig, data, where=where)
    except BadInputError as exc:  # name the file (or the preset) the bad value came from
        if exc.path is not None:
            raise
        message = exc.message if where in exc.message else f"{where}: {exc.message}"
        raise BadInputError(message, path=config_file, fix=exc.fix) from None


@dataclass(frozen=True)
class PipelineResult:
    """Where everything went, and the scores (None / empty without ground truth)."""

    out: Path
    run_dir: Path
    cams: Path
    masks: Path
    scores: EvalResult | None
    compared: dict[str, EvalResult]
    report: Path | None
    chain: tuple[str, ...] = ()
    refined: Path | None = None

    def table(self) -> str:
        """A markdown table: one row per chain (the compared ones, then the main one), with the
        context leakage of each class when the data set has context masks."""
        if self.scores is None:
            return ""
        names = self.scores.classes[1:]
        leak = bool(self.scores.leakage)
        head = ["refine chain", "mIoU", *(f"{c} IoU" for c in names),
                *((f"{c} leakage" for c in names) if leak else ()), "coverage"]
        rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]

        def fmt(v: float) -> str:
            return "-" if math.isnan(v) else f"{v:.3f}"

        for name, res in [*self.compared.items(), ("→".join(self.chain), self.scores)]:
            m = res.metrics
            cells = [name, fmt(m["miou"]), *(fmt(v) for v in m["iou"][1:]),
                     *((fmt(res.leakage.get(c, math.nan)) for c in names) if leak else ()),
                     fmt(m["coverage"])]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)


def _chain_folder(chain: str) -> str:
    return chain.replace(":", "_").replace("/", "_").replace("=", "-").replace(",", "_")


def run(config: PipelineConfig, root: str | os.PathLike, out: str | os.PathLike
        ) -> PipelineResult:
    """Run every stage on data set ``root`` into ``out`` (see the module docstring).

    A rerun with the same config continues where the last one stopped (each stage resumes); a
    rerun with another config into the same ``out`` is refused by the first stage it changes.
    """
    from pseudolabel.cams.stage import run as make_cams
    from pseudolabel.data import load_dataset
    from pseudolabel.evaluate.stage import evaluate
    from pseudolabel.refine.stage import run as refine
    from pseudolabel.train.stage import run as train

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError("output is a file, not a folder", path=out,
                            fix="give --out a folder (new, or of an earlier run to resume it)")
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG_NAME)
    run_dir = train(config.train, root, out / "run")
    cams_path = make_cams(config.cams, root, run_dir, out / "cams.h5")
    masks = refine(config.refine, cams_path, out / ("masks" if config.selftrain is None
                                                    else "refined"), images_root=root)
    refined = None
    chain = tuple(config.refine.refiners)
    if config.selftrain is not None:
        from pseudolabel.selftrain.stage import run as selftrain

        refined, chain = masks, (*chain, "selftrain")
        masks = selftrain(dataclasses.replace(config.selftrain, split=config.cams.split), root,
                          refined, out / "masks", run_dir)
    others = {
        chain: refine(dataclasses.replace(config.refine, refiners=tuple(chain.split("+"))),
                      cams_path, out / "compare" / _chain_folder(chain), images_root=root)
        for chain in config.compare}
    dataset = load_dataset(root, config.cams.split, require_labels=False,
                           policy="skip" if config.cams.skip_bad else "raise")
    scores = None
    compared: dict[str, EvalResult] = {}
    if dataset.has_gt:
        scores = evaluate(masks, dataset, config.evaluate)
        with atomic_write(out / "evaluate.json", "w", encoding="utf-8") as fh:
            json.dump(scores.to_dict(), fh, indent=1)
        compared = {chain: evaluate(path, dataset, config.evaluate)
                    for chain, path in others.items()}
        if refined is not None:  # refine's masks, before self-training
            compared["→".join(config.refine.refiners)] = evaluate(refined, dataset,
                                                                  config.evaluate)
    report = None
    if config.report:
        from pseudolabel.report import run as make_report

        report = make_report(ReportConfig(split=config.cams.split, gallery=24,
                                          key=config.refine.key),
                             out / "report.html", masks=masks,
                             gt=root if dataset.has_gt else None,
                             images=root, cams=cams_path, run_dir=run_dir)
    return PipelineResult(out, run_dir, cams_path, masks, scores, compared, report, chain,
                          refined)


#: The preset ``pseudolabel demo`` runs (its compare chains show the label-free alternatives).
DEMO_PRESET = "demo"


def demo_config(*, epochs: int | None = None, device: str = "auto",
                preset: str = DEMO_PRESET) -> PipelineConfig:
    """The demo's pipeline: the ``demo`` preset (see its file), sized for a 2-core CPU."""
    return pipeline_config(preset, epochs=epochs, device=device)


def demo(out: str | os.PathLike, *, data: DemoConfig = DemoConfig(), epochs: int | None = None,
         device: str = "auto", config: PipelineConfig | None = None) -> PipelineResult:
    """Make the synthetic data set in ``out/data`` and run the pipeline on it (``config``, by
    default :func:`demo_config`)."""
    from pseudolabel.data.demo import run as make_data

    out = Path(out)
    root = make_data(data, out / "data")
    return run(config or demo_config(epochs=epochs, device=device), root, out)

