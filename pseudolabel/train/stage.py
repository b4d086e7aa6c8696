"""The train stage: ``run(config, root, out) -> RUN_DIR``.

RUN_DIR gets student.pt (and teacher.pt in the two-model modes) after every epoch, last.pt (the
full state for resuming), config.yaml, metrics.json and curves.svg. Under torchrun every process
trains its shard of each batch; only rank 0 writes.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pseudolabel.config import save_config, to_dict
from pseudolabel.data.source import DataSource, SourceLike
from pseudolabel.errors import BadInputError
from pseudolabel.models import check_same_classes, create_classifier, load_checkpoint
from pseudolabel.models.checkpoint import save_checkpoint
from pseudolabel.ops import nonfinite_tensors
from pseudolabel.train.config import TrainConfig
from pseudolabel.train.data import (
    TrainData,
    batches_per_epoch,
    eval_loader,
    load_train_data,
    train_loader,
)
from pseudolabel.train.distributed import DistInfo, all_reduce_mean, distributed_context
from pseudolabel.train.history import CURVES_FILE, plot_curves, write_metrics
from pseudolabel.train.loop import Phase, bce_criterion, predict, train_epoch
from pseudolabel.train.losses import ALIGN_LOSSES, AlignLoss, positive_weights
from pseudolabel.train.metrics import classification_metrics
from pseudolabel.train.nets import TrainNet, check_pairs
from pseudolabel.train.optim import make_optimizer, make_scheduler
from pseudolabel.train.rundir import CONFIG_FILE, STATE_FILE, claim_run_dir, record
from pseudolabel.train.state import load_state, restore, restore_rng, save_state

log = logging.getLogger(__name__)


def make_phases(cfg: TrainConfig) -> list[Phase]:
    """The phases of a mode: single, teacher then student, or both at once."""
    if cfg.mode == "single":
        return [Phase("student", ("student",), (), cfg.epochs)]
    if cfg.mode == "co-training":
        return [Phase("co-training", ("student", "teacher"), (), cfg.epochs)]
    phases = []
    if cfg.teacher_checkpoint is None:
        phases.append(Phase("teacher", ("teacher",), (), cfg.teacher_epochs or cfg.epochs))
    phases.append(Phase("student", ("student",), ("teacher",), cfg.epochs))
    return phases


def build_nets(cfg: TrainConfig, classes: tuple[str, ...], classes_file: Path
               ) -> tuple[dict[str, TrainNet], AlignLoss | None, dict[str, list[str]]]:
    """The TrainNets by role, the alignment loss (or None) and each role's aligned layers."""
    student = create_classifier(cfg.student, classes, pretrained_file=cfg.student_weights,
                                drop_rate=cfg.drop_rate, output_stride=cfg.output_stride)
    if not cfg.two_models:
        return ({"student": TrainNet(student, want_cam=cfg.neg_cam_weight > 0)}, None,
                {"student": []})
    if cfg.teacher_checkpoint is not None:
        teacher, meta = load_checkpoint(cfg.teacher_checkpoint)
        check_same_classes(teacher.classes, cfg.teacher_checkpoint, classes, classes_file)
        log.info("teacher %s loaded from %s", meta["model_name"], cfg.teacher_checkpoint)
    else:
        teacher = create_classifier(cfg.teacher, classes, pretrained_file=cfg.teacher_weights,
                                    drop_rate=cfg.drop_rate)
    align = ALIGN_LOSSES.get(cfg.align)() if cfg.uses_alignment else None
    pairs = cfg.layer_pairs() if align is not None else []
    if align is not None:
        check_pairs(student, teacher, pairs, align.needs_same_channels, cfg.projector, cfg.align)
    s_layers = [s for s, _ in pairs]
    t_layers = [t for _, t in pairs]
    want_cam = cfg.cam_kd_weight > 0 or cfg.neg_cam_weight > 0

    def channels(model: nn.Module, layers: list[str]) -> list[int] | None:
        return [model.layer_info(n).channels for n in layers] if cfg.projector else None

    nets = {
        "student": TrainNet(student, s_layers, channels(teacher, t_layers), want_cam),
        "teacher": TrainNet(teacher, t_layers,
                            channels(student, s_layers) if cfg.mode == "co-training" else None,
                            want_cam),
    }
    return nets, align, {"student": s_layers, "teacher": t_layers}


def run(config: TrainConfig, root: SourceLike, out: str | os.PathLike) -> Path:
    """Train the classifier(s) of ``config`` on dataset ``root`` (a root path, or a
    :class:`~pseudolabel.data.source.DataSource`: a COCO file and its images) into RUN_DIR ``out``."""
    with distributed_context(config.device) as info:
        torch.manual_seed(config.seed)
        data = load_train_data(root, config)
        source = DataSource.of(root).to_dict()  # recorded: the saved config replays alone
        with claim_run_dir(out, config, main=info.is_main, source=source) as (run_dir, resume):
            info.barrier()
            if info.is_main:
                save_config(record(config, source), run_dir / CONFIG_FILE)
            if not resume and info.is_main:
                warn_if_from_scratch(config)
            _train(config, data, DataSource.of(root).classes_file, run_dir, info, resume)
            info.barrier()
    return run_dir


def warn_if_from_scratch(cfg: TrainConfig) -> None:
    """One warning when a model starts from random weights (no local pretrained file given)."""
    scratch = {"student": cfg.student} if cfg.student_weights is None else {}
    if cfg.two_models and cfg.teacher_checkpoint is None and cfg.teacher_weights is None:
        scratch["teacher"] = cfg.teacher
    if not scratch:
        return
    log.warning("training %s from random weights (no pretrained file given): CAMs from "
                "scratch are much poorer; fix: %s with ImageNet weights (docs/weights.md "
                "shows how to get the file)",
                " and ".join(f"the {role} {name}" for role, name in scratch.items()),
                " ".join(f"--{role}-weights FILE" for role in scratch))


def _train(cfg: TrainConfig, data: TrainData, classes_file: Path, out: Path, info: DistInfo,
           resume: bool) -> None:
    device = info.device
    nets, align, layers = build_nets(cfg, data.classes, classes_file)
    for net in nets.values():
        net.to(device)
    state = load_state(out / STATE_FILE) if resume else None
    history: list[dict] = state["history"] if state else []
    if state:
        for role, net in nets.items():
            restore(net, state["nets"].get(role), f"nets.{role}", out / STATE_FILE)
        log.info("resuming at phase %d, epoch %d", state["phase"] + 1, state["epoch"] + 1)
    pos_weight = positive_weights(data.train.targets()) if cfg.class_balanced else None
    criterion = bce_criterion(pos_weight).to(device)
    use_amp = cfg.amp and device.type == "cuda"
    batches = batches_per_epoch(len(data.train), cfg, info)
    steps_per_epoch = math.ceil(batches / cfg.accumulate)
    meta = {"mode": cfg.mode, "config": to_dict(cfg),
            **{role: net.classifier.model_name for role, net in nets.items()}}
    start_phase = state["phase"] if state else 0

    for pi, phase in enumerate(make_phases(cfg)):
        if pi < start_phase:
            continue
        for role, net in nets.items():
            net.requires_grad_(role in phase.train)
        run_nets: dict[str, nn.Module] = dict(nets)
        if info.distributed:
            for role in phase.train:
                run_nets[role] = DistributedDataParallel(
                    nets[role], device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = make_optimizer([nets[r] for r in phase.train], cfg)
        scheduler = make_scheduler(optimizer, cfg, steps_per_epoch, phase.epochs)
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
        first_epoch = 0
        if state is not None and pi == start_phase:
            for part, target in (("optimizer", optimizer), ("scheduler", scheduler),
                                 ("scaler", scaler)):
                restore(target, state[part], part, out / STATE_FILE)
            restore_rng(state["rng"], out / STATE_FILE)
            first_epoch = state["epoch"]
        for epoch in range(first_epoch, phase.epochs):
            loader = train_loader(data.train, cfg, info, pi * 100_000 + epoch)
            desc = f"{phase.name} {epoch + 1}/{phase.epochs}"
            stats = train_epoch(phase, run_nets, loader, optimizer, scheduler, scaler, criterion,
                                cfg, align, layers, device, desc, show_progress=info.is_main)
            stats = {k: all_reduce_mean(v, info) for k, v in sorted(stats.items())}
            check_not_diverged(stats.get("loss", 0.0), nets, phase, len(history) + 1, epoch, out)
            stats["images_per_s"] *= info.world_size
            row = {"epoch": len(history) + 1, "phase": phase.name, "phase_epoch": epoch + 1,
                   **stats}
            if info.is_main:
                row.update(_validate(nets, phase, data, cfg, info))
                history.append(row)
                _write_epoch(out, nets, phase, cfg, meta, row, history)
                save_state(out / STATE_FILE, nets=nets, optimizer=optimizer, scheduler=scheduler,
                           scaler=scaler, phase=pi, epoch=epoch + 1, history=history,
                           config=to_dict(cfg))
            else:
                history.append(row)
            _log_row(row)
            info.barrier()
        state = None


def check_not_diverged(loss: float, nets: dict[str, TrainNet], phase: Phase, epoch: int,
                       phase_epoch: int, out: Path) -> None:
    """Stop the run when an epoch's mean loss (the same on every rank) or a trained net's
    weights are not finite: nothing of that epoch is written, so RUN_DIR keeps the last
    finite epoch's checkpoints and last.pt. Every option value may be valid (``--lr 1e8``)."""
    bad = [role for role in phase.train if nonfinite_tensors(nets[role].state_dict())]
    if math.isfinite(loss) and not bad:
        return
    what = "the loss is" if not math.isfinite(loss) else f"the {bad[0]}'s weights are"
    raise BadInputError(
        f"{what} not finite at epoch {epoch} ({phase.name} {phase_epoch + 1}/{phase.epochs}):"
        " the training diverged; the files of the last finite epoch are kept", path=out,
        fix="lower --lr (or add --warmup-epochs), and start again with --overwrite")


def _validate(nets: dict[str, TrainNet], phase: Phase, data: TrainData, cfg: TrainConfig,
              info: DistInfo) -> dict:
    if data.val is None:
        return {}
    row: dict = {}
    loader = eval_loader(data.val, cfg, info)
    for role in phase.train:
        scores, targets = predict(nets[role], loader, info.device, cfg.amp)
        m = classification_metrics(scores, targets, data.classes)
        row.update({f"{role}/mAP": m["mAP"], f"{role}/mean_f1": m["mean_f1"],
                    f"{role}/ap": m["ap"], f"{role}/f1": m["f1"]})
    return row


def _write_epoch(out: Path, nets: dict[str, TrainNet], phase: Phase, cfg: TrainConfig,
                 meta: dict, row: dict, history: list[dict]) -> None:
    for role in (*phase.train, *phase.frozen):
        if role in phase.frozen and (out / f"{role}.pt").is_file():
            continue  # a frozen teacher is written once
        save_checkpoint(out / f"{role}.pt", nets[role].classifier, role=role,
                        epoch=row["epoch"], phase=phase.name, phase_epoch=row["phase_epoch"],
                        **meta)
    write_metrics(out / "metrics.json", history)
    plot_curves(out / CURVES_FILE, history)


def _log_row(row: dict) -> None:
    shown = {k: v for k, v in row.items()
             if isinstance(v, float) and ("/" not in k or k.endswith("mAP"))}
    log.info("epoch %d (%s %d): %s", row["epoch"], row["phase"], row["phase_epoch"],
             ", ".join(f"{k}={v:.4g}" for k, v in shown.items() if isinstance(v, float)))
