"""``pseudolabel run``: the whole pipeline on a data set, from a named preset."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import click

from pseudolabel.cli.options import PathType, skip_bad_option
from pseudolabel.config import split_list
from pseudolabel.train.config import OUTPUT_STRIDES, Mode


def _floats(ctx: click.Context, param: click.Parameter, value: str | None
            ) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in split_list(value))
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {value!r}") from None


#: (decorator args, kwargs) of the stage options shared by ``run`` and ``demo``; None defaults
#: leave the preset's value.
_STAGE_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--preset",), {"default": None, "metavar": "NAME",
                     "help": "Named configuration (pseudolabel run --list-presets)."}),
    (("--config", "config_file"), {"type": PathType(dir_okay=False),
                                   "help": "YAML/JSON of the same shape as a preset (train:, cams:, "
                                           "refine:, compare:, ...; OUT/pipeline.yaml replays a "
                                           "run); over the preset, under the options."}),
    (("--mode",), {"type": click.Choice(typing.get_args(Mode)),
                   "help": "Training mode (train --mode)."}),
    (("--student",), {"help": "Student (or single) model name (train --student)."}),
    (("--student-weights",), {"type": PathType(dir_okay=False),
                              "help": "Pretrained weights file of the student."}),
    (("--teacher",), {"help": "Teacher model name (teacher-student, co-training)."}),
    (("--teacher-weights",), {"type": PathType(dir_okay=False),
                              "help": "Pretrained weights file of the teacher."}),
    (("--epochs",), {"type": click.IntRange(min=1), "help": "Training epochs."}),
    (("--image-size",), {"type": click.IntRange(min=16), "help": "Training image side."}),
    (("--output-stride",), {"type": click.Choice([str(s) for s in OUTPUT_STRIDES]), "callback":
                            lambda ctx, param, value: None if value is None else int(value),
                            "help": "Output stride of the student CNN (train --output-stride)."}),
    (("--batch-size",), {"type": click.IntRange(min=1), "help": "Batch size (train, make-cams)."}),
    (("--lr",), {"type": float, "help": "Learning rate."}),
    (("--seed",), {"type": int, "help": "Training seed."}),
    (("--split",), {"help": "Split to train on and to make masks for (default: the preset's; "
                            "a root without split files uses every image)."}),
    (("--val-split",), {"help": "Split for validation during training."}),
    (("--scales",), {"callback": _floats, "help": "CAM scales, e.g. 1,2 (make-cams --scales)."}),
    (("--refiner", "refiners"), {"multiple": True,
                                 "help": "The refine chain, in order (repeat; refine --list)."}),
    (("--key",), {"help": "CAM key the masks start from (refine --key)."}),
    (("--selftrain/--no-selftrain",), {"default": None,
                                        "help": "Self-training: a segmenter trained on refine's "
                                                "masks (OUT/refined) writes the final masks "
                                                "(pseudolabel selftrain; default: the preset's)."}),
    (("--device",), {"help": "cpu, cuda, cuda:N or auto."}),
    (("--workers",), {"type": click.IntRange(min=0),
                      "help": "Worker processes of each stage."}),
]


def stage_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``run`` that choose and change the pipeline config (also on ``demo``)."""
    for args, kwargs in reversed(_STAGE_OPTIONS):
        f = click.option(*args, **kwargs)(f)
    return skip_bad_option(f)


def build_config(preset: str | None, config_file: str | None, default_preset: str | None = None,
                 **options: Any) -> Any:
    """The PipelineConfig from the parsed options (empty tuples / False = not given)."""
    from pseudolabel.pipeline import pipeline_config

    options["refiners"] = tuple(options["refiners"]) or None
    options["skip_bad"] = options["skip_bad"] or None
    return pipeline_config(preset or default_preset, config_file, **options)


def echo_result(result: Any) -> None:
    """The scores' tables and where the masks and the report are."""
    if result.scores is not None:
        click.echo(result.scores.table())
        click.echo("")
        click.echo(result.table())
    click.echo(f"masks: {result.masks}")
    if result.report is not None:
        click.echo(f"report: {result.report.resolve()}")


def _list_presets(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from pseudolabel import presets

    for name in presets.names():
        mark = " (default)" if name == presets.DEFAULT else ""
        click.echo(f"{name}{mark}\n  " + presets.describe(name).replace("\n", "\n  "))
    ctx.exit(0)


@click.command("run")
@click.argument("root", type=PathType(file_okay=False))
@click.option("--out", required=True, type=PathType(file_okay=False),
              help="Output folder (rerun the same command to resume).")
@stage_options
@click.option("--compare", multiple=True,
              help="Also make and score this chain (refiners joined by '+'); repeat.")
@click.option("--report/--no-report", default=None, help="Write OUT/report.html.")
@click.option("--list-presets", is_flag=True, is_eager=True, expose_value=False,
              callback=_list_presets, help="List the presets with what they measured, and exit.")
def command(root, out, preset, config_file, compare, report, **options) -> None:
    """Train, make CAMs, refine, evaluate (when ROOT has ground truth) and report, into OUT.

    \b
    OUT/pipeline.yaml  the resolved configuration (--config OUT/pipeline.yaml replays it)
    OUT/run            checkpoints, metrics, curves (train)
    OUT/cams.h5        CAMs (make-cams)
    OUT/masks          the final masks: <id>.png, 0 background, i+1 class i, 255 unsure
    OUT/refined        refine's masks, with --selftrain (then OUT/masks holds its masks)
    OUT/evaluate.json  scores against ROOT/SegmentationClass (and context leakage when
                       ROOT/SegmentationContext exists)
    OUT/report.html    scores, curves and masks, worst first
    The preset gives every stage's options (--list-presets); --config FILE and the
    options here change them. Rerunning the same command resumes an interrupted run.
    Examples:
      pseudolabel run data --out work
      pseudolabel run data --out work --preset best --student-weights lite0.pth --device cuda
    """
    import dataclasses

    from pseudolabel.pipeline import run

    cfg = build_config(preset, config_file, **options)
    if compare:
        cfg = dataclasses.replace(cfg, compare=tuple(compare))
    if report is not None:
        cfg = dataclasses.replace(cfg, report=report)
    echo_result(run(cfg, root, out))
