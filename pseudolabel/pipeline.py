"""The whole pipeline in one call: train -> make-cams -> refine -> evaluate (-> report).

``run(PipelineConfig(...), root, out)`` is the Python API a user scripts; ``pseudolabel demo``
runs it on the built-in synthetic smoke data with a configuration sized for a 2-core CPU.
Each stage keeps its own resume logic, so rerunning an interrupted pipeline continues it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pseudolabel.cams.stage import MakeCamsConfig
from pseudolabel.config import save_config
from pseudolabel.data.demo import DemoConfig
from pseudolabel.evaluate.stage import EvalResult, EvaluateConfig
from pseudolabel.refine.stage import RefineConfig
from pseudolabel.report.build import ReportConfig
from pseudolabel.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """One frozen config per stage; ``baseline`` is a refine chain scored for comparison."""

    train: TrainConfig = field(default_factory=TrainConfig)
    cams: MakeCamsConfig = field(default_factory=MakeCamsConfig)
    refine: RefineConfig = field(default_factory=lambda: RefineConfig(refiners=("gmm",)))
    baseline: tuple[str, ...] = ("threshold",)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: bool = True


@dataclass(frozen=True)
class PipelineResult:
    """Where everything went, and the scores (None without ground truth)."""

    out: Path
    run_dir: Path
    cams: Path
    masks: Path
    scores: EvalResult | None
    baseline_scores: EvalResult | None
    report: Path | None


def run(config: PipelineConfig, root: str | Path, out: str | Path) -> PipelineResult:
    """Run every stage on dataset ``root`` into ``out`` (run/, cams.h5, masks/, ...)."""
    from pseudolabel.cams.stage import run as make_cams
    from pseudolabel.data import load_dataset
    from pseudolabel.evaluate.stage import evaluate
    from pseudolabel.refine.stage import run as refine
    from pseudolabel.train.stage import run as train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "pipeline.yaml")
    run_dir = train(config.train, root, out / "run")
    cams_path = make_cams(config.cams, root, run_dir, out / "cams.h5")
    masks = refine(config.refine, cams_path, out / "masks", images_root=root)
    baseline = None
    if config.baseline:
        import dataclasses

        base_cfg = dataclasses.replace(config.refine, refiners=config.baseline)
        baseline = refine(base_cfg, cams_path, out / "masks-baseline", images_root=root)
    dataset = load_dataset(root, config.cams.split, require_labels=False)
    scores = baseline_scores = None
    if dataset.has_gt:
        scores = evaluate(masks, dataset, config.evaluate)
        (out / "evaluate.json").write_text(json.dumps(scores.to_dict(), indent=1))
        if baseline is not None:
            baseline_scores = evaluate(baseline, dataset, config.evaluate)
    report = None
    if config.report:
        from pseudolabel.report import run as make_report

        report = make_report(ReportConfig(split=config.cams.split, gallery=24),
                             out / "report.html", masks=masks,
                             gt=root if dataset.has_gt else None,
                             images=root, cams=cams_path, run_dir=run_dir)
    return PipelineResult(out, run_dir, cams_path, masks, scores, baseline_scores, report)


def demo_config(*, epochs: int = 6, device: str = "auto") -> PipelineConfig:
    """The demo's pipeline: a CNN student taught by a ViT, fusion of student and teacher, gmm."""
    return PipelineConfig(
        train=TrainConfig(mode="teacher-student", student="resnet10t", teacher="test_vit",
                          align="spatial", kd_weight=1.0, epochs=epochs, image_size=128,
                          batch_size=32, lr=1e-3, num_workers=1, device=device,
                          val_split="val", warmup_epochs=0.5),
        cams=MakeCamsConfig(split="train", scales=(1.0, 0.5, 1.5), models=("student", "teacher"),
                            batch_size=32, workers=1, device=device),
        refine=RefineConfig(refiners=("fusion", "gmm"), key="student/features", workers=2),
        baseline=("threshold",),
    )


def demo(out: str | Path, *, data: DemoConfig = DemoConfig(), epochs: int = 6,
         device: str = "auto") -> PipelineResult:
    """Make the synthetic data set in ``out/data`` and run the demo pipeline on it."""
    from pseudolabel.data.demo import run as make_data

    out = Path(out)
    root = make_data(data, out / "data")
    return run(demo_config(epochs=epochs, device=device), root, out)
