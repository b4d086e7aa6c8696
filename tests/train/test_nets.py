"""Projectors, frozen teachers, co-training and a learnable toy problem, on the real loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pseudolabel.errors import BadInputError
from pseudolabel.train.config import TrainConfig
from pseudolabel.train.data import load_train_data, train_loader
from pseudolabel.train.distributed import DistInfo
from pseudolabel.train.loop import bce_criterion, phase_loss, train_epoch
from pseudolabel.train.optim import make_optimizer, make_scheduler
from pseudolabel.train.stage import build_nets, make_phases

CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def _cfg(**kw) -> TrainConfig:
    base = dict(student="test_resnet", teacher="test_vit", image_size=32, batch_size=4,
                num_workers=0, device="cpu", epochs=1, val_fraction=0.0, warmup_epochs=0,
                schedule="constant", lr=1e-3)
    return TrainConfig(**{**base, **kw})


def _setup(cfg: TrainConfig, root: Path):
    torch.manual_seed(0)
    data = load_train_data(root, cfg)
    nets, align, layers = build_nets(cfg, data.classes, root)
    return data, nets, align, layers


def _params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _changed(before: dict, after: dict, prefix: str = "") -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def _one_epoch(cfg, data, nets, align, layers, phase):
    optimizer = make_optimizer([nets[r] for r in phase.train], cfg)
    scheduler = make_scheduler(optimizer, cfg, 3, phase.epochs)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loader = train_loader(data.train, cfg, CPU, 0)
    stats = train_epoch(phase, nets, loader, optimizer, scheduler, scaler, bce_criterion(None),
                        cfg, align, layers, CPU.device, "test", show_progress=False)
    return optimizer, stats


@pytest.mark.parametrize("align", ["global", "spatial", "channel"])
def test_projector_is_optimised_and_teacher_stays_frozen(toy_root: Path, align: str) -> None:
    cfg = _cfg(mode="teacher-student", align=align, align_layers=("layer3:features",),
               cam_kd_weight=1.0, out_kd_weight=1.0)
    data, nets, align_loss, layers = _setup(cfg, toy_root)
    student, teacher = nets["student"], nets["teacher"]
    assert len(student.projectors) == 1 and len(teacher.projectors) == 0
    assert student.projectors[0][0].weight.shape == (64, 192, 1, 1)  # 192 -> 64 channels
    phase = make_phases(cfg)[-1]
    assert phase.train == ("student",) and phase.frozen == ("teacher",)
    teacher.requires_grad_(False)
    s0, t0 = _params(student), _params(teacher)
    # gradients reach the projector through the alignment loss
    x, y, _ = next(iter(train_loader(data.train, cfg, CPU, 0)))
    loss, parts = phase_loss(phase, nets, x, y, bce_criterion(None), cfg, align_loss, layers)
    loss.backward()
    grad = student.projectors[0][0].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    assert {"student/align", "student/out_kd", "student/cam_kd"} <= set(parts)
    student.zero_grad()
    optimizer, _ = _one_epoch(cfg, data, nets, align_loss, layers, phase)
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) in in_opt for p in student.projectors.parameters())
    assert not any(id(p) in in_opt for p in teacher.parameters())
    s1, t1 = _params(student), _params(teacher)
    assert _changed(s0, s1, "projectors.") and _changed(s0, s1, "classifier.backbone.")
    assert not _changed(t0, t1)  # teacher weights (and BN statistics) identical


def test_co_training_updates_both_models_and_their_projectors(toy_root: Path) -> None:
    cfg = _cfg(mode="co-training", align="spatial")
    data, nets, align_loss, layers = _setup(cfg, toy_root)
    assert len(nets["teacher"].projectors) == 1  # teacher -> student channels (64 -> 96)
    phase = make_phases(cfg)[0]
    before = {r: _params(n) for r, n in nets.items()}
    _, stats = _one_epoch(cfg, data, nets, align_loss, layers, phase)
    assert {"student/align", "teacher/align"} <= set(stats)
    for role, net in nets.items():
        after = _params(net)
        assert _changed(before[role], after, "classifier."), role
        assert _changed(before[role], after, "projectors."), role


def test_align_target_side_gets_no_gradient(toy_root: Path) -> None:
    cfg = _cfg(mode="co-training", align="global", kd_weight=1.0)
    data, nets, align_loss, layers = _setup(cfg, toy_root)
    phase = make_phases(cfg)[0]
    x, y, _ = next(iter(train_loader(data.train, cfg, CPU, 0)))
    out_s, out_t = nets["student"](x), nets["teacher"](x)
    from pseudolabel.train.loop import transfer_losses

    terms = transfer_losses(out_s, out_t, y, layers["teacher"], cfg, align_loss)
    terms["align"].backward()
    assert all(p.grad is None for p in nets["teacher"].parameters())
    assert nets["student"].projectors[0][0].weight.grad is not None
    assert phase.name == "co-training"


def test_without_projector_channel_counts_must_match_except_for_gram(toy_root: Path) -> None:
    with pytest.raises(BadInputError, match="without a projector"):
        _setup(_cfg(mode="teacher-student", align="spatial", projector=False), toy_root)
    _, nets, _, _ = _setup(_cfg(mode="teacher-student", align="channel", projector=False),
                           toy_root)
    assert len(nets["student"].projectors) == 0


def test_loss_decreases_on_a_learnable_toy_problem(toy_root: Path) -> None:
    cfg = _cfg(mode="single", lr=3e-3, batch_size=6)
    data, nets, _, layers = _setup(cfg, toy_root)
    data.train.augment = None  # a fixed problem: the same images every epoch
    phase = make_phases(cfg)[0]
    optimizer = make_optimizer([nets["student"]], cfg)
    scheduler = make_scheduler(optimizer, cfg, 2, 10)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = []
    for epoch in range(8):
        loader = train_loader(data.train, cfg, CPU, epoch)
        stats = train_epoch(phase, nets, loader, optimizer, scheduler, scaler,
                            bce_criterion(None), cfg, None, layers, CPU.device, "t",
                            show_progress=False)
        losses.append(stats["loss"])
    assert losses[-1] < 0.7 * losses[0], losses


def test_gradient_accumulation_matches_one_big_batch(toy_root: Path) -> None:
    """train_epoch with 2 x 2 accumulated images == 1 x 4 (a ViT: no batch-norm in the way)."""
    results = []
    for batch, accumulate in ((4, 1), (2, 2)):
        cfg = _cfg(mode="single", student="test_vit", batch_size=batch, accumulate=accumulate,
                   optimizer="sgd", lr=0.1)
        data, nets, _, layers = _setup(cfg, toy_root)
        data.train.samples = data.train.samples[:4]
        phase = make_phases(cfg)[0]
        optimizer = make_optimizer([nets["student"]], cfg)
        scheduler = make_scheduler(optimizer, cfg, 1, 1)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        train_epoch(phase, nets, train_loader(data.train, cfg, CPU, 0), optimizer, scheduler,
                    scaler, bce_criterion(None), cfg, None, layers, CPU.device, "t",
                    show_progress=False)
        results.append(_params(nets["student"]))
    assert _changed(_params(_setup(_cfg(student="test_vit"), toy_root)[1]["student"]),
                    results[0])
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(("n", "batch"), [(11, 4), (12, 4), (3, 4), (5, 5), (9, 2)])
def test_batches_per_epoch_matches_the_loader_and_never_leaves_a_batch_of_one(
        toy_root: Path, n: int, batch: int) -> None:
    from pseudolabel.train.data import batches_per_epoch

    cfg = _cfg(batch_size=batch)
    data = load_train_data(toy_root, cfg)
    data.train.samples = data.train.samples[:n]
    for info in (CPU, DistInfo(1, 2, 0, torch.device("cpu"))):
        loader = train_loader(data.train, cfg, info, 0)
        assert len(loader) == batches_per_epoch(n, cfg, info)
        sizes = [len(y) for _, y, _ in loader]
        assert len(sizes) == len(loader)
        assert min(sizes) > 1 or max(sizes) == 1


@pytest.mark.parametrize("mode", ["single", "teacher-student"])
def test_negative_cam_term_is_added_for_each_trained_net(toy_root: Path, mode: str) -> None:
    from pseudolabel.train.losses import negative_cam_loss

    cfg = _cfg(mode=mode, align="none", neg_cam_weight=0.5)
    data, nets, align_loss, layers = _setup(cfg, toy_root)
    phase = make_phases(cfg)[0]
    x, y, _ = next(iter(train_loader(data.train, cfg, CPU, 0)))
    assert (y == 0).any(), "the toy batch needs an absent class"
    total, parts = phase_loss(phase, nets, x, y, bce_criterion(None), cfg, align_loss, layers)
    for role in phase.train:
        out = nets[role](x)
        want = 0.5 * float(negative_cam_loss(out["cam"], out["logits"], y))
        assert parts[f"{role}/neg_cam"] == pytest.approx(want, rel=1e-4)
    assert float(total) == pytest.approx(sum(v for k, v in parts.items() if k != "loss"), rel=1e-5)
    off = _cfg(mode=mode, align="none")
    _, parts_off = phase_loss(phase, _setup(off, toy_root)[1], x, y, bce_criterion(None), off,
                              None, layers)
    assert not any(k.endswith("neg_cam") for k in parts_off)
    with pytest.raises((ValueError, BadInputError), match="neg_cam_weight"):
        _cfg(neg_cam_weight=-1.0)
