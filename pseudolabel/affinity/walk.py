"""Local affinities and the random walk of AffinityNet / IRN, vectorised in torch.

Pixels of a grid (h, w) are linked to every other pixel within ``radius`` (Euclidean, on the
grid). The affinity ``a_pq`` of a link comes from a learned embedding (``exp(-mean_d |f_p -
f_q|)``, :func:`embedding_affinity`) or, without a model, from colour (:func:`colour_affinity`).
The transition matrix is ``T = D^-1 A^beta`` (``A`` symmetric with ones on the diagonal, ``D``
its row sums), sparse and local: it is held as (n_links, h, w) weights and each of the ``t``
steps of the walk is n shifted multiply-adds (unfold-style, vectorised over the grid).

Also here: the pair labels and the balanced affinity loss used for training
(:func:`pair_labels`, :func:`sample_pairs`, :func:`affinity_loss`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pseudolabel.data.masks import IGNORE

Tensor = torch.Tensor

#: Pair kinds of the training loss.
BG_POS, FG_POS, NEG = 0, 1, 2
#: Label of a grid cell whose CAM is neither confident foreground nor background (the masks'
#: ignore value).
IGNORE_LABEL = IGNORE


def half_offsets(radius: float) -> list[tuple[int, int]]:
    """(dy, dx) of the neighbours within ``radius`` (excluding 0), one of each pair +/- o.

    ``radius`` < 1 gives no neighbour.
    """
    r = math.floor(radius)
    out = []
    for dy in range(0, r + 1):
        for dx in range(-r, r + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > radius * radius:
                continue
            out.append((dy, dx))
    return out


def neighbour_offsets(radius: float) -> list[tuple[int, int]]:
    """(dy, dx) of the walk's links: (0, 0) first, then :func:`half_offsets` and their negatives."""
    half = half_offsets(radius)
    return [(0, 0), *half, *((-dy, -dx) for dy, dx in half)]


def shifted(x: Tensor, offsets: list[tuple[int, int]]) -> Tensor:
    """(n, C, h, w): ``x[:, y + dy, x + dx]`` for each offset, 0 outside the grid; x is (C, h, w)."""
    _, h, w = x.shape
    r = max((max(abs(dy), abs(dx)) for dy, dx in offsets), default=0)
    pad = F.pad(x, (r, r, r, r))
    return torch.stack([pad[:, r + dy:r + dy + h, r + dx:r + dx + w] for dy, dx in offsets])


def _inside(h: int, w: int, offsets: list[tuple[int, int]], device: torch.device) -> Tensor:
    """(n, h, w) bool: the link p -> p + o stays on the grid."""
    return shifted(torch.ones(1, h, w, device=device), offsets)[:, 0] > 0


def embedding_affinity(embedding: Tensor, radius: float) -> tuple[list[tuple[int, int]], Tensor]:
    """Affinities of each cell to its neighbours within ``radius`` from a (D, h, w) embedding.

    Returns:
        the offsets (:func:`neighbour_offsets`, n of them) and (n, h, w) affinities
        ``exp(-mean_d |f_p - f_{p+o}|)`` in (0, 1]; 1 for the cell itself, 0 off the grid.
    """
    _, h, w = embedding.shape
    offsets = neighbour_offsets(radius)
    dist = torch.stack([(v - embedding).abs().mean(0) for v in shifted(embedding, offsets)])
    return offsets, torch.exp(-dist) * _inside(h, w, offsets, embedding.device)


def colour_affinity(image: Tensor, radius: float, sigma: float = 10.0
                    ) -> tuple[list[tuple[int, int]], Tensor]:
    """Training-free affinities from colour: ``exp(-|c_p - c_q|^2 / (2 sigma^2))``.

    Args:
        image: (3, h, w) colour at grid resolution, 0-255.
        sigma: colour width in the units of ``image``.
    Returns:
        offsets and (n, h, w) affinities as :func:`embedding_affinity`.
    """
    _, h, w = image.shape
    offsets = neighbour_offsets(radius)
    image = image.float()
    dist2 = torch.stack([((v - image) ** 2).sum(0) for v in shifted(image, offsets)])
    return offsets, torch.exp(-dist2 / (2.0 * sigma * sigma)) * _inside(h, w, offsets, image.device)


def transition_weights(affinity: Tensor, beta: float) -> Tensor:
    """(n, h, w) rows of ``T = D^-1 A^beta``: ``A^beta`` divided by its sum over the links."""
    a = affinity.double().clamp_min(0.0) ** beta
    return (a / a.sum(0, keepdim=True).clamp_min(1e-300)).float()


def random_walk(scores: Tensor, offsets: list[tuple[int, int]], weights: Tensor,
                iterations: int) -> Tensor:
    """``iterations`` steps of ``s_p <- sum_o T[o, p] s_{p+o}`` on (C, h, w) score maps.

    Equivalent to multiplying by the sparse (hw, hw) transition matrix (the links are local,
    so each step is n shifted multiply-adds).
    """
    _, h, w = scores.shape
    r = max((max(abs(dy), abs(dx)) for dy, dx in offsets), default=0)
    for _ in range(iterations):
        pad = F.pad(scores, (r, r, r, r))
        out = torch.zeros_like(scores)
        for wn, (dy, dx) in zip(weights, offsets, strict=True):
            out.addcmul_(wn, pad[:, r + dy:r + dy + h, r + dx:r + dx + w])
        scores = out
    return scores


def pair_labels(labels: Tensor, offsets: list[tuple[int, int]]) -> Tensor:
    """(n_offsets, B, h, w) int8 pair kind of each link p -> p + o (-1 = not used).

    Args:
        labels: (B, h, w) long, 0 = confident background, c >= 1 confident class,
            :data:`IGNORE_LABEL` = unsure.
    Returns:
        :data:`BG_POS` (both background), :data:`FG_POS` (same foreground class), :data:`NEG`
        (different labels), -1 when either end is unsure or outside the grid.
    """
    b, h, w = labels.shape
    out = torch.full((len(offsets), b, h, w), -1, dtype=torch.int8, device=labels.device)
    for n, (dy, dx) in enumerate(offsets):
        if dy >= h or abs(dx) >= w:  # every link of this offset leaves the grid (a tiny grid)
            continue
        y1, x0, x1 = h - dy, max(0, -dx), min(w, w - dx)
        a = labels[:, :y1, x0:x1]
        c = labels[:, dy:, x0 + dx:x1 + dx]
        sure = (a != IGNORE_LABEL) & (c != IGNORE_LABEL)
        kind = torch.where(a == c, torch.where(a == 0, BG_POS, FG_POS), NEG).to(torch.int8)
        out[n, :, :y1, x0:x1] = torch.where(sure, kind, torch.full_like(kind, -1))
    return out


def sample_pairs(labels: Tensor, offsets: list[tuple[int, int]], max_per_kind: int,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """At most ``max_per_kind`` random links of each kind (memory stays bounded).

    Returns:
        p, q (m,) flat indices into the (B * h * w) cells and (m,) long kinds.
    """
    b, h, w = labels.shape
    kinds = pair_labels(labels, offsets)
    dy = torch.tensor([o[0] for o in offsets], device=labels.device)
    dx = torch.tensor([o[1] for o in offsets], device=labels.device)
    ps, qs, ks = [], [], []
    for kind in (BG_POS, FG_POS, NEG):
        idx = (kinds.reshape(-1) == kind).nonzero().squeeze(1)
        if idx.numel() > max_per_kind:
            pick = torch.randperm(idx.numel(), generator=generator)[:max_per_kind]
            idx = idx[pick.to(idx.device)]
        n, rest = idx // (b * h * w), idx % (b * h * w)
        ps.append(rest)
        qs.append(rest + dy[n] * w + dx[n])
        ks.append(torch.full_like(rest, kind))
    return torch.cat(ps), torch.cat(qs), torch.cat(ks)


#: Weights of the loss terms (AffinityNet: bg/4 + fg/4 + neg/2).
_KIND_WEIGHTS = {BG_POS: 0.25, FG_POS: 0.25, NEG: 0.5}


def affinity_loss(embedding: Tensor, p: Tensor, q: Tensor, kinds: Tensor,
                  eps: float = 1e-5) -> Tensor:
    """The balanced affinity loss on sampled links.

    Args:
        embedding: (B, D, h, w); p, q index its (B * h * w) cells; kinds as :func:`sample_pairs`.
    Returns:
        scalar: each kind's mean of ``-log a`` (positives) or ``-log(1 - a)`` (negatives),
        weighted 1/4, 1/4, 1/2 and renormalised over the kinds present (0 when none).
    """
    b, d, h, w = embedding.shape
    flat = embedding.permute(0, 2, 3, 1).reshape(b * h * w, d)
    aff = torch.exp(-(flat[p] - flat[q]).abs().mean(1))
    total = embedding.new_zeros(())
    weight = 0.0
    for kind, wk in _KIND_WEIGHTS.items():
        sel = kinds == kind
        if not bool(sel.any()):
            continue
        a = aff[sel]
        term = -torch.log(a + eps) if kind != NEG else -torch.log(1.0 - a + eps)
        total = total + wk * term.mean()
        weight += wk
    return total / weight if weight else total + 0.0 * embedding.sum()
