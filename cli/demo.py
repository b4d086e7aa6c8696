"""``pseudolabel demo``: the whole pipeline on the built-in synthetic smoke data."""

from __future__ import annotations

import click

from pseudolabel.cli.options import device_option


@click.command("demo")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n-images", default=300, show_default=True, type=click.IntRange(min=20),
              help="Images of the synthetic data set.")
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=32),
              help="Image side in pixels.")
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(min=1),
              help="Epochs of each training phase (teacher, then student).")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic data.")
@device_option
def command(out, n_images, size, epochs, seed, device) -> None:
    """Make the demo data in OUT/data, then train, make-cams, refine, evaluate and report.

    \b
    OUT/data        the synthetic smoke data set (pseudolabel demo-data)
    OUT/run         teacher (ViT) and student (CNN) checkpoints, metrics, curves
    OUT/cams.h5     multi-scale CAMs of the student and the teacher
    OUT/masks       pseudo-masks: the student's CAM, background threshold, dense CRF
    OUT/compare     masks of other chains, scored beside them: threshold alone, the
                    label-free gmm, fusion of student and teacher then gmm
    OUT/report.html scores, curves and the masks, worst first
    Rerunning the same command resumes an interrupted demo.
    """
    from pseudolabel.data.demo import DemoConfig
    from pseudolabel.pipeline import demo

    result = demo(out, data=DemoConfig(n_images=n_images, size=size, seed=seed), epochs=epochs,
                  device=device)
    if result.scores is not None:
        click.echo(result.scores.table())
        click.echo("")
        click.echo(result.table())
    if result.report is not None:
        click.echo(f"report: {result.report.resolve()}")
