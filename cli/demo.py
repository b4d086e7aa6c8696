"""``pseudolabel demo``: ``pseudolabel run`` on the built-in synthetic smoke data."""

from __future__ import annotations

import click

from pseudolabel.cli.options import PathType
from pseudolabel.cli.run import build_config, echo_result, stage_options


@click.command("demo")
@click.argument("out", type=PathType(file_okay=False))
@click.option("--n-images", default=300, show_default=True, type=click.IntRange(min=20),
              help="Images of the synthetic data set.")
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=32),
              help="Image side in pixels.")
@click.option("--data-seed", default=0, show_default=True, type=int,
              help="Seed of the synthetic data.")
@stage_options
def command(out, n_images, size, data_seed, preset, config_file, **options) -> None:
    """Make the demo data in OUT/data, then run the pipeline on it (pseudolabel run).

    \b
    OUT/data        the synthetic smoke data set (pseudolabel demo-data), with chimney
                    context masks (SegmentationContext/)
    OUT/run         checkpoints, metrics, curves
    OUT/cams.h5     multi-scale CAMs
    OUT/masks       the pseudo-masks of the preset's chain
    OUT/compare     masks of other chains, scored beside them
    OUT/report.html scores, curves and the masks, worst first
    The preset is `demo` (pseudolabel run --list-presets); the stage options of
    pseudolabel run change it. Rerunning the same command resumes an interrupted demo.
    """
    from pseudolabel.data.demo import DemoConfig
    from pseudolabel.pipeline import DEMO_PRESET, demo

    cfg = build_config(preset, config_file, DEMO_PRESET, **options)
    result = demo(out, data=DemoConfig(n_images=n_images, size=size, seed=data_seed), config=cfg)
    echo_result(result)
