"""The permutohedral lattice: dense high-dimensional Gaussian filtering in tensor code.

:class:`PermutohedralLattice` is the filter of Adams et al. (2010) vectorised: the lattice hashed
by sorting integer-packed keys (one sort + ``unique_consecutive``, neighbours found with
``searchsorted``), splat and slice as sparse CSR matrix products, a [1 2 1] blur along each
lattice direction as sparse products too. No compiler needed; CPU or CUDA.
:func:`lattice_filter` wraps it as a (C, H, W) -> (C, H, W) filter of an image's features.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["MAX_CODE", "PermutohedralLattice", "lattice_filter"]

#: Points per chunk when locating their lattice simplices.
_CHUNK = 32768
#: Largest product of key ranges packed into one int64 code (else rows are hashed with unique).
MAX_CODE = 2**62


def _enclosing_simplex(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The lattice simplex around each point: (n, d) int64 nearest remainder-0 point (its first
    d coordinates), (n, d+1) int64 rank of each coordinate's residual and (n, d+1) float32
    barycentric weights. Vertex r of the simplex has the key (first d coordinates)
    ``rem0 + r - (d+1) * (rank > d - r)`` (see :func:`_simplex_keys`).

    Adams et al.'s elevation, nearest remainder-0 point and rank sort, vectorised over points,
    in float32 with pydensecrf's order of operations (so that ties are broken alike); the
    integers (remainder-0 point, ranks) are exact in float32 while they stay below 2^24.
    """
    n, d = features.shape
    device = features.device
    f = features.to(torch.float32)
    # Elevate into the hyperplane sum(x) = 0 of R^(d+1), scaled so that the lattice's
    # [1 2 1] blur approximates a unit Gaussian.
    i = torch.arange(1, d + 1, dtype=torch.float64, device=device)
    inv_std = float(np.float32(math.sqrt(2.0 / 3.0) * (d + 1)))
    cf = f * (inv_std / torch.sqrt(i * (i + 1))).to(torch.float32)  # (N, d)
    elevated = torch.zeros(n, d + 1, dtype=torch.float32, device=device)
    elevated[:, :d] = torch.flip(torch.cumsum(torch.flip(cf, [1]), 1), [1])  # sum_{j >= i} cf_j
    elevated[:, 1:] -= i.to(torch.float32) * cf
    # The nearest remainder-0 lattice point, in units of d+1 (ties go down, as in pydensecrf).
    v = elevated * float(np.float32(1.0 / (d + 1)))
    down = torch.floor(v)
    up = down + 1
    rem0 = torch.where(up * (d + 1) - elevated < elevated - down * (d + 1), up, down)
    # rank_i = #{j: res_j > res_i} + #{j < i: res_j == res_i} (a stable descending sort), then
    # shifted by the point's total so that the vertex sums to 0, wrapping into the next point.
    res = elevated - rem0 * (d + 1)
    shifted = rem0.sum(1, keepdim=True).expand(n, d + 1).clone()
    for j in range(d + 1):
        c = res[:, j:j + 1]
        shifted[:, : j + 1] += c > res[:, : j + 1]
        shifted[:, j + 1:] += c >= res[:, j + 1:]
    wrap = torch.floor(shifted * (1.0 / (d + 1)))  # -1, 0 or 1
    rank = shifted.sub_(wrap * (d + 1)).to(torch.int64)
    rem0 = rem0.sub_(wrap)
    # Barycentric weights of the d+1 vertices of the enclosing simplex.
    delta = (elevated - rem0 * (d + 1)) * float(np.float32(1.0 / (d + 1)))
    bary = torch.zeros(n, d + 2, dtype=torch.float32, device=device)
    bary.scatter_add_(1, d - rank, delta)
    bary.scatter_add_(1, d + 1 - rank, delta.neg_())
    bary[:, 0] += 1.0 + bary[:, d + 1]
    return (rem0[:, :d] * (d + 1)).to(torch.int64), rank, bary[:, : d + 1].contiguous()


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
    :meth:`normalise` (or :class:`SymmetricNormalised`), where the scale cancels.

    Args:
        features: (N, d) positions in feature space, already divided by their standard
            deviations (e.g. ``x / sxy, y / sxy, r / srgb, ...``).
        max_code: the largest product of key ranges hashed as one packed int64 code; wider
            lattices hash their key rows with ``unique`` (slower, same result).
    """

    def __init__(self, features: Tensor, *, max_code: int = MAX_CODE) -> None:
        n, d = features.shape
        self.num_points, self.dim = n, d
        # Chunks of points keep the many small temporaries in cache.
        parts = [_enclosing_simplex(chunk) for chunk in features.split(_CHUNK)]
        rem0 = torch.cat([p[0] for p in parts])  # (N, d) int64
        rank = torch.cat([p[1] for p in parts])  # (N, d+1) int64
        bary = torch.cat([p[2] for p in parts])  # (N, d+1) float32
        del parts
        # Hash: pack each key into one int64. Keys lie within [rem0 - (d+1), rem0 + d]; the
        # margins leave room for the blur's neighbours, whose codes are then code +- constants.
        lo = (rem0.min(0).values if n else rem0.new_zeros(d)) - 2 * (d + 1)
        span = (rem0.max(0).values if n else rem0.new_zeros(d)) + d - lo + (d + 2)
        mult = [1] * d
        for k in range(d - 2, -1, -1):
            mult[k] = mult[k + 1] * int(span[k + 1])
        self._rows = None  # the vertex keys when they are too wide to pack into codes
        if d == 0 or mult[0] * int(span[0]) >= max_code:  # too wide to pack: hash rows
            flat = _simplex_keys(rem0, rank).reshape(-1, d)
            self._rows, ids = torch.unique(flat, dim=0, return_inverse=True)
        else:
            ids = self._vertex_codes(rem0 - lo, rank, mult).reshape(-1)
        # One sort gives the vertices (unique keys), each key's vertex and the keys by vertex
        # (in int32 when the codes allow: a faster sort).
        base = ids.min() if n else ids.new_zeros(())
        narrow = n and int(ids.max() - base) < 2**31 - 1
        sorted_ids, by_vertex = torch.sort((ids - base).to(torch.int32) if narrow else ids, stable=True)
        uniq, vertex_sorted, counts = torch.unique_consecutive(
            sorted_ids, return_inverse=True, return_counts=True)
        uniq = uniq.to(torch.int64) + base if narrow else uniq
        inverse = torch.empty_like(vertex_sorted)
        inverse[by_vertex] = vertex_sorted
        self._uniq = uniq
        self.num_vertices = m = int(uniq.shape[0])
        # Splat and slice as sparse (M+1, N) / (N, M+1) matrices of barycentric weights (the
        # extra vertex M is a zero row that missing neighbours point to during the blur).
        flat_weights = bary.reshape(-1)
        self._slice_columns = inverse  # (N*(d+1),): d+1 vertices per point
        self._slice_values = flat_weights
        self._splat_columns = torch.div(by_vertex, d + 1, rounding_mode="floor")
        self._splat_values = flat_weights[by_vertex]
        counts = torch.cat([counts, counts.new_zeros(1)])  # the zero row has no point
        self._splat_rows = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        self._make_matrices()
        # Neighbours of each vertex along each of the d+1 lattice directions (missing ones ->
        # the zero row m): key -+ 1 everywhere, +- (d+1) on coordinate j; all looked up at once.
        if self._rows is None:
            step = sum(mult)
            shifts = [(e - step, step - e) for e in [(d + 1) * mk for mk in mult] + [0]]
            queries = torch.cat([uniq + s for pair in shifts for s in pair])
        else:
            queries = []
            for j in range(d + 1):
                n1, n2 = self._rows - 1, self._rows + 1
                if j < d:
                    n1[:, j] += d + 1
                    n2[:, j] -= d + 1
                queries += [n1, n2]
            queries = torch.cat(queries)
        found = self._lookup(queries).reshape(d + 1, 2, m)
        self.neighbours = [(pair[0], pair[1]) for pair in found]
        self.blur_matrices = self._blur_matrices()

    @property
    def packed(self) -> bool:
        """True when the vertex keys are hashed as packed int64 codes (else as rows)."""
        return self._rows is None

    def _blur_matrices(self) -> list[Tensor]:
        """The [1 2 1] / 2 blurs along the d+1 directions as (M+1, M+1) sparse matrices, two
        directions composed into each (9 entries a row: ``B_{j+1} B_j``), so d+1 passes take
        half as many products. Entries pointing at the zero row m add nothing; row m stays
        empty."""
        m = self.num_vertices
        device = self._uniq.device
        taps = torch.tensor([0.5, 1.0, 0.5], device=device)
        row = torch.arange(m + 1, device=device)  # vertex m: the zero row, its own neighbour
        pad = torch.full((1,), m, dtype=torch.int64, device=device)
        steps = [torch.stack([torch.cat([n1, pad]), row, torch.cat([n2, pad])], 1)
                 for n1, n2 in self.neighbours]  # (M+1, 3) each: -1, 0, +1 along direction j
        matrices = []
        for j in range(0, len(steps), 2):
            if j + 1 < len(steps):  # along j+1 to a, then along j from a
                columns = steps[j][steps[j + 1][:m]].reshape(m, 9)
                weights = (taps[:, None] * taps[None, :]).reshape(1, 9).expand(m, 9)
            else:
                columns, weights = steps[j][:m], taps.expand(m, 3)
            k = columns.shape[1]
            crow = torch.cat([torch.arange(0, k * m + 1, k, device=device), pad.new_full((1,), k * m)])
            matrices.append(_csr(columns, weights.contiguous(), m + 1, crow=crow))
        return matrices

    @staticmethod
    def _vertex_codes(rem0: Tensor, rank: Tensor, mult: Sequence[int]) -> Tensor:
        """(N, d+1) int64 codes of the simplex vertices, without building the (N, d+1, d) keys.

        Vertex r adds r to every coordinate and subtracts d+1 from the r coordinates of highest
        rank, so its code is ``code(rem0) + r sum(mult) - (d+1) A_r`` with ``A_r`` the sum of
        ``mult`` over those coordinates (coordinate d, outside the key, has mult 0).
        """
        n, d = rem0.shape
        device = rem0.device
        weights = torch.tensor([*mult, 0], dtype=torch.int64, device=device)
        coordinate_of_rank = torch.empty_like(rank).scatter_(
            1, rank, torch.arange(d + 1, device=device).expand(n, -1).contiguous())
        highest = torch.flip(weights[coordinate_of_rank], [1]).cumsum(1)  # [:, t]: ranks d-t..d
        codes = torch.cat([highest.new_zeros(n, 1), highest[:, :d]], 1).mul_(-(d + 1))
        codes += torch.arange(d + 1, device=device) * sum(mult)
        return codes.add_(PermutohedralLattice._pack(rem0, mult)[:, None])

    @staticmethod
    def _pack(keys: Tensor, mult: Sequence[int]) -> Tensor:
        """(N,) int64 ``sum_k keys_k * mult_k`` (keys already shifted by ``lo``: non-negative)."""
        code = keys[:, 0] * mult[0]
        for k in range(1, keys.shape[1]):
            code += keys[:, k] * mult[k]
        return code

    def _make_matrices(self) -> None:
        n, m, d = self.num_points, self.num_vertices, self.dim
        self.slice_matrix = _csr(self._slice_columns.reshape(n, d + 1),
                                 self._slice_values.reshape(n, d + 1), m + 1)
        self.splat_matrix = _csr(self._splat_columns, self._splat_values, n, crow=self._splat_rows)

    def normalise(self, weight: float = 1.0) -> PermutohedralLattice:
        """Fold the symmetric normalisation ``D^-1/2 K D^-1/2`` (``D = K 1``) and a weight into
        the splat and slice weights: afterwards a call costs the same and returns
        ``weight * D^-1/2 K D^-1/2 v``. Returns self."""
        ones = torch.ones(self.num_points, 1, dtype=torch.float32, device=self._uniq.device)
        norm = 1.0 / torch.sqrt(self(ones)[:, 0].clamp_min(0.0) + 1e-20)  # (N,)
        d = self.dim
        self._splat_values = self._splat_values * norm[self._splat_columns]
        self._slice_values = (self._slice_values.reshape(-1, d + 1) * (norm * weight)[:, None]).reshape(-1)
        self._make_matrices()
        return self

    def _lookup(self, keys: Tensor) -> Tensor:
        """(M,) vertex index of each key (packed code, or key row), or ``num_vertices`` where it
        is not in the lattice."""
        if self._rows is None:
            table, query = self._uniq, keys
        else:  # hash the rows of both sets together
            both = torch.cat([self._rows, keys])
            _, ids = torch.unique(both, dim=0, return_inverse=True)
            table, query = ids[: self.num_vertices], ids[self.num_vertices:]
        pos = torch.searchsorted(table, query).clamp_max(self.num_vertices - 1)
        return torch.where(table[pos] == query, pos, torch.full_like(pos, self.num_vertices))

    def __call__(self, values: Tensor) -> Tensor:
        """Filter (N, C) values -> (N, C) (splat, blur, slice)."""
        grid = self.splat_matrix.to(values.dtype) @ values  # (M+1, C); row m is 0
        for blur in self.blur_matrices:  # [1 2 1] / 2 along each lattice direction
            grid = blur.to(values.dtype) @ grid
        return self.slice_matrix.to(values.dtype) @ grid


def _csr(columns: Tensor, values: Tensor, num_columns: int, crow: Tensor | None = None) -> Tensor:
    """A sparse CSR matrix from per-row column indices (int32 indices when they fit: no
    conversion at each product).

    ``columns``/``values`` are (R, k) for k entries in each of R rows (in any order within a
    row), or flat with ``crow`` (R+1,) row offsets.
    """
    if crow is None:
        rows, k = columns.shape
        crow = torch.arange(0, rows * k + 1, k, device=columns.device)
    index = torch.int32 if max(num_columns, columns.numel()) < 2**31 - 1 else torch.int64
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow.to(index), columns.reshape(-1).to(index), values.reshape(-1),
                                       (crow.numel() - 1, num_columns), check_invariants=False)


def lattice_filter(features: Tensor, *, normalise: bool = False,
                   weight: float = 1.0) -> Callable[[Tensor], Tensor]:
    """A (C, H, W) -> (C, H, W) filter with the permutohedral lattice of (F, H, W) features;
    with ``normalise``, ``weight * D^-1/2 K D^-1/2`` (see :meth:`PermutohedralLattice.normalise`)."""
    lattice = PermutohedralLattice(features.reshape(features.shape[0], -1).T)
    if normalise:
        lattice.normalise(weight)
    elif weight != 1.0:
        raise ValueError("a weight needs normalise=True")

    def apply(x: Tensor) -> Tensor:
        c = x.shape[0]
        return lattice(x.reshape(c, -1).T.contiguous()).T.reshape(x.shape)

    return apply
