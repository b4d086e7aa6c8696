"""Filtering building blocks shared by the ``crf`` and ``par`` refiners (torch, CPU or CUDA).

- :class:`PermutohedralLattice`: the dense high-dimensional Gaussian filter of Adams et al.
  (2010) as vectorised tensor code: the lattice hashed by sorting integer-packed keys (one
  sort + ``unique_consecutive``, neighbours found with ``searchsorted``), splat and slice as
  sparse CSR matrix products, a [1 2 1] blur along each lattice direction as gathers.
  No compiler needed.
- :class:`GaussianKernel`: a dense Gaussian over pixel positions (separable, banded products).
- :class:`WindowKernel`: a bilateral kernel restricted to a ``k x k`` window (ConvCRF's idea),
  optionally on a grid downsampled by an integer factor (:class:`Downsampled`).
- :class:`SymmetricNormalised`: ``D^-1/2 K D^-1/2`` around any of them (``D = K 1``), the
  normalisation of the dense CRF of Krähenbühl and Koltun.
- :func:`shifted_views`: the neighbours of every pixel at given offsets (replicate border).
- :func:`image_tensor`, :func:`probabilities`: input conversion.
- :func:`refine_probabilities`: the refiner side shared by ``crf`` and ``par`` (image check,
  ignored pixels, normalised output).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pseudolabel.errors import BadInputError
from pseudolabel.refine.base import RefineState

Tensor = torch.Tensor

#: Points per chunk when locating their lattice simplices.
_CHUNK = 32768
#: Largest product of key ranges packed into one int64 code (else rows are hashed with unique).
_MAX_CODE = 2**62


def image_tensor(image: np.ndarray | Tensor, device: torch.device | str = "cpu") -> Tensor:
    """(3, H, W) float32 tensor (values 0-255) from an (H, W, 3) or (3, H, W) RGB image.

    An array whose last axis has 3 entries is read as (H, W, 3) (the project's convention).
    """
    t = image if isinstance(image, Tensor) else torch.from_numpy(np.array(image))
    if t.ndim != 3 or 3 not in (t.shape[0], t.shape[-1]):
        raise ValueError(f"expected an (H, W, 3) or (3, H, W) image, got shape {tuple(t.shape)}")
    if t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    return t.to(device=device, dtype=torch.float32).contiguous()


def probabilities(scores: np.ndarray | Tensor, clip: float = 0.0,
                  device: torch.device | str = "cpu") -> Tensor:
    """(C, H, W) float32 probabilities: non-negative scores divided by their sum per pixel.

    A pixel whose scores sum to 0 becomes uniform; ``clip`` > 0 keeps every value >= clip
    (then renormalised) so that ``-log`` stays finite.
    """
    s = scores if isinstance(scores, Tensor) else torch.from_numpy(np.array(scores, np.float32))
    s = s.to(device=device, dtype=torch.float32).clamp_min(0.0)
    total = s.sum(0, keepdim=True)
    p = torch.where(total > 0, s / total.clamp_min(1e-30), torch.full_like(s, 1.0 / s.shape[0]))
    if clip > 0:
        p = p.clamp_min(clip)
        p = p / p.sum(0, keepdim=True)
    return p


def pixel_grid(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(2, H, W) float32 pixel coordinates (x = column, y = row)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack([xs, ys])


def check_device(device: str) -> None:
    """ValueError (one line) unless ``device`` names a torch device usable here."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here (use device=cpu)")


def uniform_where_ignored(probs: Tensor, ignore: np.ndarray) -> Tensor:
    """(C, H, W) probabilities with ignored pixels made uniform (they carry no evidence)."""
    if not ignore.any():
        return probs
    mask = torch.from_numpy(np.array(ignore, dtype=bool)).to(probs.device)
    return torch.where(mask, torch.full_like(probs, 1.0 / probs.shape[0]), probs)


def refine_probabilities(state: RefineState, name: str,
                         run: Callable[[np.ndarray, Tensor], Tensor | np.ndarray], *,
                         fill_ignore: bool = False, clip: float = 0.0) -> RefineState:
    """Apply ``run(image (H, W, 3) uint8, probs (C, H, W)) -> (C, H, W)`` to a state's scores.

    The scores are normalised to probabilities (``clip`` as in :func:`probabilities`); ignored
    pixels enter as uniform (no evidence) and stay ignored unless ``fill_ignore``. The new
    scores are ``run``'s probabilities, background row first as before.
    """
    if state.image is None:
        raise BadInputError(f"{name}: no image for {state.image_id or 'this record'}",
                            fix=f"{name} needs the images: give --images ROOT")
    probs = uniform_where_ignored(probabilities(state.scores, clip), state.ignore)
    q = run(state.image, probs)
    q = q.detach().cpu().numpy() if isinstance(q, Tensor) else np.asarray(q)
    ignore = np.zeros_like(state.ignore) if fill_ignore else state.ignore.copy()
    return state.replace(scores=np.ascontiguousarray(q, dtype=np.float32), ignore=ignore)


def _enclosing_simplex(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The lattice simplex around each point: (n, d) int64 nearest remainder-0 point (its first
    d coordinates), (n, d+1) int64 rank of each coordinate's residual and (n, d+1) float32
    barycentric weights. Vertex r of the simplex has the key (first d coordinates)
    ``rem0 + r - (d+1) * (rank > d - r)`` (see :func:`_simplex_keys`).

    Adams et al.'s elevation, nearest remainder-0 point and rank sort, vectorised over points.
    """
    n, d = features.shape
    device = features.device
    f = features.to(torch.float64)
    # Elevate into the hyperplane sum(x) = 0 of R^(d+1), scaled so that the lattice's
    # [1 2 1] blur approximates a unit Gaussian.
    i = torch.arange(1, d + 1, dtype=torch.float64, device=device)
    cf = f * ((d + 1) * math.sqrt(2.0 / 3.0) / torch.sqrt(i * (i + 1)))  # (N, d)
    suffix = torch.flip(torch.cumsum(torch.flip(cf, [1]), 1), [1])  # sum_{j >= i} cf_j
    suffix = torch.cat([suffix, torch.zeros(n, 1, dtype=f.dtype, device=device)], 1)
    elevated = suffix - torch.cat([torch.zeros(n, 1, dtype=f.dtype, device=device),
                                   i * cf], 1)  # (N, d+1)
    # The nearest remainder-0 lattice point and the rank of each coordinate's residual.
    v = elevated / (d + 1)
    up, down = torch.ceil(v) * (d + 1), torch.floor(v) * (d + 1)
    rem0 = torch.where(up - elevated < elevated - down, up, down)
    total = torch.round(rem0.sum(1, keepdim=True) / (d + 1)).to(torch.int64)  # (N, 1)
    # rank_i = #{j: res_j > res_i} + #{j < i: res_j == res_i} (a stable descending sort).
    res = elevated - rem0
    earlier = torch.ones(d + 1, d + 1, dtype=torch.bool, device=device).tril(-1)
    rank = ((res[:, None, :] > res[:, :, None])
            | ((res[:, None, :] == res[:, :, None]) & earlier)).sum(2)
    too_high = (total > 0) & (rank >= d + 1 - total)
    too_low = (total < 0) & (rank < -total)
    rank = rank + total - (d + 1) * too_high + (d + 1) * too_low
    rem0 = rem0 - (d + 1) * too_high + (d + 1) * too_low
    # Barycentric weights of the d+1 vertices of the enclosing simplex.
    delta = (elevated - rem0) / (d + 1)
    bary = torch.zeros(n, d + 2, dtype=f.dtype, device=device)
    bary.scatter_add_(1, d - rank, delta)
    bary.scatter_add_(1, d - rank + 1, -delta)
    bary[:, 0] += 1.0 + bary[:, d + 1]
    rem0_int = torch.round(rem0[:, :d]).to(torch.int64)
    return rem0_int, rank, bary[:, : d + 1].to(torch.float32)


def _simplex_keys(rem0: Tensor, rank: Tensor) -> Tensor:
    """(n, d+1, d) int64 keys of the d+1 vertices of each point's simplex (rem0 plus the
    canonical simplex offset of each remainder)."""
    d = rem0.shape[1]
    r = torch.arange(d + 1, device=rem0.device)[None, :, None]
    return rem0[:, None, :] + r - (d + 1) * (rank[:, None, :d] > d - r)


class PermutohedralLattice:
    """Approximate dense Gaussian filtering ``out_i = sum_j exp(-|f_i - f_j|^2 / 2) v_j``.

    Built once for the features of one image, then applied to any number of value sets. The
    result is proportional to the Gaussian filter (the lattice's blur is not normalised); use
    it inside :class:`SymmetricNormalised`, where the scale cancels.

    Args:
        features: (N, d) positions in feature space, already divided by their standard
            deviations (e.g. ``x / sxy, y / sxy, r / srgb, ...``).
    """

    def __init__(self, features: Tensor) -> None:
        n, d = features.shape
        device = features.device
        # Chunks of points keep the many small temporaries in cache.
        parts = [_enclosing_simplex(chunk) for chunk in features.split(_CHUNK)]
        rem0 = torch.cat([p[0] for p in parts])  # (N, d) int64
        rank = torch.cat([p[1] for p in parts])  # (N, d+1) int64
        bary = torch.cat([p[2] for p in parts])  # (N, d+1) float32
        del parts
        # Hash: pack each key into one int64. Keys lie within [rem0 - (d+1), rem0 + d]; the
        # margins leave room for the blur's neighbours.
        lo = (rem0.min(0).values if n else rem0.new_zeros(d)) - 2 * (d + 1)
        span = (rem0.max(0).values if n else rem0.new_zeros(d)) + d - lo + (d + 2)
        mult = [1] * d
        for k in range(d - 2, -1, -1):
            mult[k] = mult[k + 1] * int(span[k + 1])
        self._rows = None
        self._code = None
        if d == 0 or mult[0] * int(span[0]) >= _MAX_CODE:  # too wide to pack: hash rows
            flat = _simplex_keys(rem0, rank).reshape(-1, d)
            self._rows, ids = torch.unique(flat, dim=0, return_inverse=True)
        else:
            self._code = (lo, torch.tensor(mult, dtype=torch.int64, device=device))
            # The code of vertex r, without building the (N, d+1, d) keys: the code of rem0,
            # plus r per coordinate, minus (d+1) where rank_k > d - r.
            codes = self._encode(rem0)[:, None] + torch.arange(
                d + 1, device=device)[None, :] * sum(mult)
            d_minus_r = d - torch.arange(d + 1, device=device)[None, :]
            for k in range(d):
                codes -= (rank[:, k:k + 1] > d_minus_r).to(torch.int64) * ((d + 1) * mult[k])
            ids = codes.reshape(-1)
        # One sort gives the vertices (unique keys), each key's vertex and the keys by vertex.
        sorted_ids, by_vertex = torch.sort(ids, stable=True)
        uniq, vertex_sorted, counts = torch.unique_consecutive(
            sorted_ids, return_inverse=True, return_counts=True)
        inverse = torch.empty_like(vertex_sorted)
        inverse[by_vertex] = vertex_sorted
        self._uniq = uniq
        if self._code is None:
            uniq_keys = self._rows
        else:
            uniq_keys = torch.stack([(uniq // mk) % int(sk) for mk, sk in
                                     zip(mult, span.tolist(), strict=True)], 1) + lo
        self.num_vertices = m = int(uniq_keys.shape[0])
        # Splat and slice as sparse (M+1, N) / (N, M+1) matrices of barycentric weights (the
        # extra vertex M is a zero row that missing neighbours point to during the blur).
        flat_weights = bary.reshape(-1)
        index, order = inverse.reshape(n, d + 1).sort(1)
        self.slice_matrix = _csr(index, flat_weights.reshape(n, d + 1).gather(1, order), m + 1)
        counts = torch.cat([counts, counts.new_zeros(1)])  # the zero row has no point
        self.splat_matrix = _csr(by_vertex // (d + 1), flat_weights[by_vertex], n,
                                 crow=torch.cat([counts.new_zeros(1), counts.cumsum(0)]))
        # Neighbours of each vertex along each of the d+1 lattice directions (missing ones ->
        # the zero row m).
        self.neighbours = []
        for j in range(d + 1):
            n1, n2 = uniq_keys - 1, uniq_keys + 1
            if j < d:
                n1[:, j] += d + 1
                n2[:, j] -= d + 1
            self.neighbours.append((self._lookup(n1), self._lookup(n2)))

    def _encode(self, keys: Tensor) -> Tensor:
        lo, mult = self._code
        code = (keys[:, 0] - lo[0]) * mult[0]
        for k in range(1, keys.shape[1]):
            code += (keys[:, k] - lo[k]) * mult[k]
        return code

    def _lookup(self, keys: Tensor) -> Tensor:
        """(M,) vertex index of each key row, or ``num_vertices`` where it is not in the lattice."""
        if self._code is not None:
            table, query = self._uniq, self._encode(keys)
        else:  # hash the rows of both sets together
            both = torch.cat([self._rows, keys])
            _, ids = torch.unique(both, dim=0, return_inverse=True)
            table, query = ids[: self.num_vertices], ids[self.num_vertices:]
        pos = torch.searchsorted(table, query).clamp_max(self.num_vertices - 1)
        return torch.where(table[pos] == query, pos, torch.full_like(pos, self.num_vertices))

    def __call__(self, values: Tensor) -> Tensor:
        """Filter (N, C) values -> (N, C) (splat, blur, slice)."""
        m = self.num_vertices
        grid = self.splat_matrix.to(values.dtype) @ values  # (M+1, C); row m is 0
        spare = torch.empty_like(grid)
        for n1, n2 in self.neighbours:  # [1 2 1] / 2 along each lattice direction
            both = grid.index_select(0, n1).add_(grid.index_select(0, n2))
            torch.add(grid[:m], both, alpha=0.5, out=spare[:m])
            spare[m] = 0.0
            grid, spare = spare, grid
        return self.slice_matrix.to(values.dtype) @ grid


def _csr(columns: Tensor, values: Tensor, num_columns: int, crow: Tensor | None = None) -> Tensor:
    """A sparse CSR matrix from per-row column indices.

    ``columns``/``values`` are (R, k) for k entries in each of R rows (sorted per row), or flat
    with ``crow`` (R+1,) row offsets.
    """
    if crow is None:
        rows, k = columns.shape
        crow = torch.arange(0, rows * k + 1, k, device=columns.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, columns.reshape(-1), values.reshape(-1),
                                       (crow.numel() - 1, num_columns), check_invariants=False)


class GaussianKernel:
    """Dense Gaussian over pixel positions: ``out_p = sum_q exp(-|p - q|^2 / (2 sigma^2)) x_q``.

    Exact up to a truncation at 4 sigma (relative tail < 4e-4), zero outside the image.
    Separable: each axis is a banded Toeplitz product computed block by block (``block`` rows
    against ``block + 2r`` rows), i.e. a few small matrix multiplications instead of a
    one-channel convolution.
    """

    def __init__(self, size: tuple[int, int], sigma: float, device: torch.device | str = "cpu",
                 block: int = 64) -> None:
        self.radius = r = max(1, min(math.ceil(4.0 * sigma), max(size)))
        self.blocks = [min(block, n) for n in size]
        t = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
        taps = torch.exp(-0.5 * (t / sigma) ** 2)
        self.bands = []
        for b in self.blocks:  # (b, b + 2r): row i holds the taps at columns i .. i + 2r
            band = torch.zeros(b, b + 2 * r, dtype=torch.float32, device=device)
            cols = torch.arange(b, device=device)[:, None] + torch.arange(2 * r + 1, device=device)
            band.scatter_(1, cols, taps.expand(b, -1).contiguous())
            self.bands.append(band)

    def _along_rows(self, x: Tensor, band: Tensor, block: int) -> Tensor:
        """Blur (C, H, W) along H with the (block, block + 2r) band."""
        c, height, width = x.shape
        r, nb = self.radius, -(-height // block)
        padded = F.pad(x, (0, 0, r, nb * block - height + r))  # (C, nb*block + 2r, W)
        windows = padded.unfold(1, block + 2 * r, block)  # (C, nb, W, block + 2r)
        out = windows @ band.T  # (C, nb, W, block)
        return out.permute(0, 1, 3, 2).reshape(c, nb * block, width)[:, :height]

    def __call__(self, x: Tensor) -> Tensor:
        """Filter (C, H, W) -> (C, H, W)."""
        x = self._along_rows(x, self.bands[0], self.blocks[0])
        x = self._along_rows(x.transpose(1, 2), self.bands[1], self.blocks[1])
        return x.transpose(1, 2).contiguous()


def window_offsets(window: int) -> list[tuple[int, int]]:
    """The (dy, dx) offsets of a ``window x window`` square (odd size) around a pixel."""
    r = window // 2
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


class WindowKernel:
    """``out_p = sum_{q in window(p)} exp(-|p - q|^2 / (2 sxy^2) - |I_p - I_q|^2 / 2) x_q``.

    The dense bilateral kernel restricted to a square window (ConvCRF's local approximation):
    weights are computed once per image, (window^2, H, W); pixels outside the image count 0.

    Args:
        features: (F, H, W) appearance features already divided by their std (e.g. rgb / srgb).
        sxy: positional standard deviation in pixels.
        window: odd window size.
    """

    def __init__(self, features: Tensor, sxy: float, window: int) -> None:
        _, height, width = features.shape
        self.radius = r = window // 2
        self.offsets = window_offsets(window)
        padded = F.pad(features, (r, r, r, r))
        inside = F.pad(torch.ones(1, height, width, device=features.device), (r, r, r, r))
        weights = []
        for dy, dx in self.offsets:
            other = padded[:, r + dy: r + dy + height, r + dx: r + dx + width]
            valid = inside[0, r + dy: r + dy + height, r + dx: r + dx + width]
            colour = ((features - other) ** 2).sum(0)
            weights.append(torch.exp(-0.5 * colour - (dy * dy + dx * dx) / (2.0 * sxy * sxy)) * valid)
        self.weights = torch.stack(weights)  # (window^2, H, W)

    def __call__(self, x: Tensor) -> Tensor:
        """Filter (C, H, W) -> (C, H, W)."""
        r = self.radius
        _, height, width = x.shape
        padded = F.pad(x, (r, r, r, r))
        out = torch.zeros_like(x)
        for w, (dy, dx) in zip(self.weights, self.offsets, strict=True):
            out.addcmul_(w, padded[:, r + dy: r + dy + height, r + dx: r + dx + width])
        return out


class Downsampled:
    """Run a kernel on a coarser grid: average-pool by ``factor``, filter, bilinear upsample.

    ConvCRF's ``blur``: the message passing costs ``factor^2`` less; ``kernel`` maps
    (C, h, w) -> (C, h, w) on the pooled grid ``h = ceil(H / factor)``.
    """

    def __init__(self, kernel: Callable[[Tensor], Tensor], size: tuple[int, int], factor: int) -> None:
        self.kernel, self.size, self.factor = kernel, size, factor

    @staticmethod
    def pool(x: Tensor, factor: int) -> Tensor:
        """(C, H, W) -> (C, ceil(H / f), ceil(W / f)) block means (partial blocks at the end)."""
        return F.avg_pool2d(x[None], factor, ceil_mode=True, count_include_pad=False)[0]

    def __call__(self, x: Tensor) -> Tensor:
        out = self.kernel(self.pool(x, self.factor))
        return F.interpolate(out[None], size=self.size, mode="bilinear", align_corners=False)[0]


def lattice_filter(features: Tensor) -> Callable[[Tensor], Tensor]:
    """A (C, H, W) -> (C, H, W) filter with the permutohedral lattice of (F, H, W) features."""
    lattice = PermutohedralLattice(features.reshape(features.shape[0], -1).T)

    def apply(x: Tensor) -> Tensor:
        c = x.shape[0]
        return lattice(x.reshape(c, -1).T.contiguous()).T.reshape(x.shape)

    return apply


class SymmetricNormalised:
    """``x -> D^-1/2 K (D^-1/2 x)`` with ``D = K 1``: a kernel normalised so that constants
    stay (nearly) constant; ``kernel`` maps (C, H, W) -> (C, H, W)."""

    def __init__(self, kernel: Callable[[Tensor], Tensor], size: tuple[int, int],
                 device: torch.device | str = "cpu") -> None:
        self.kernel = kernel
        ones = torch.ones(1, *size, dtype=torch.float32, device=device)
        self.norm = 1.0 / torch.sqrt(kernel(ones).clamp_min(0.0) + 1e-20)  # (1, H, W)

    def __call__(self, x: Tensor) -> Tensor:
        return self.kernel(x * self.norm) * self.norm


def shifted_views(x: Tensor, offsets: Sequence[tuple[int, int]]) -> list[Tensor]:
    """(C, H, W) neighbours ``x[:, clamp(y + dy), clamp(x + dx)]`` for each offset (views of one
    replicate-padded copy)."""
    _, height, width = x.shape
    r = max([max(abs(dy), abs(dx)) for dy, dx in offsets] + [0])
    padded = F.pad(x[None], (r, r, r, r), mode="replicate")[0] if r else x
    return [padded[:, r + dy: r + dy + height, r + dx: r + dx + width] for dy, dx in offsets]
