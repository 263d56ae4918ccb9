"""SAR's intensity T for float targets: per element, the RMS over the covered bits of how far one
flip moves the stored value, with the flips that move it farther than ``UNCOVERED_SPAN`` x
max|W| of its tensor counting 0 (see ``sar_core.training.fault_geometry``'s module doc).

Exact per stored value (tested against NumPy bit views): normal values through per-exponent
tables, zeros and subnormals one by one; all tensors of a SAR step in one pass.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from sar_core.faults.model import FaultModel
from sar_core.formats import bits as B

# a float flip that moves a weight farther than this times max|W| of its tensor is left out of T
UNCOVERED_SPAN = 2.0


@lru_cache(maxsize=64)
def _float_tables(fmt: str, bits: tuple[int, ...], device: str = "cpu") -> dict[str, torch.Tensor]:
    """Per biased exponent E the squared displacements d_b^2 of the covered ``bits`` (on
    ``device``):

    - ``a``, ``c``, ``lin`` (2^ne,): sum over the sign and mantissa bits, A[E] w^2 + C[E], and
      the exponent flip onto E = 0 of E = 2^j, (alpha |w| + beta)^2 (none is ever uncovered:
      |d| <= 2|w|);
    - ``up`` (2^ne, J + 1): for a normal E, sum of A_j[E] (d_j^2 = A_j w^2) over the J covered
      exponent bits, without the *upward* flips (bit j of E is 0: w -> w 2^(2^j)) among the k
      highest covered exponent bits, k = 0..J. Upward flip j moves w by |w| (2^(2^j) - 1), more
      than a span S iff |w| > S / (2^(2^j) - 1): those thresholds fall as j rises, so the flips
      that move w farther than S are always the highest k, k = the number of thresholds below
      |w| (``jumps``); a flip onto the all-ones exponent (inf, NaN) is never covered; a downward
      flip moves w by less than |w| and is always covered;
    - ``a_up_mean``, ``c_mean``, ``lin_mean``: (A + the exponent column k), C and L over |bits|:
      T^2 (the mean over the bits) of a normal element is a_up w^2 + lin |w| + c;
    - ``n_up`` (2^ne, J + 1): how many flips the k highest leave out (for ``describe_sar``);
    - ``jumps`` (J,): 2^(2^j) - 1 of the covered exponent bits, highest j first;
    - ``pow`` (J,): 2^(2^j - bias), what exponent bit j makes of E = 0 (zeros, subnormals);
    - ``binade`` (2^ne,): 2^(E - bias), the smallest |w| of a normal E (0 for E = 0);
    - ``m_step``: how far each covered mantissa bit moves a value of E = 0.
    """
    f = B.get_format(fmt)
    m, ne = f.mantissa_bits, f.exponent_bits
    bias = 2 ** (ne - 1) - 1
    exp_j = sorted((b - m for b in bits if m <= b < f.width - 1), reverse=True)  # highest first
    nj, n = len(exp_j), 2**ne
    a = torch.zeros(n, dtype=torch.float64)
    c = torch.zeros(n, dtype=torch.float64)
    lin = torch.zeros(n, dtype=torch.float64)
    up = torch.zeros((n, nj + 1), dtype=torch.float64)
    n_up = torch.zeros((n, nj + 1), dtype=torch.int64)
    for e_b in range(n):
        e = max(e_b, 1) - bias  # stored exponent (subnormals: 1 - bias)
        for b in bits:
            if b == f.width - 1:  # sign: w -> -w
                a[e_b] += 4.0
            elif b < m:  # mantissa bit k: +- 2^(k - M) * 2^e
                c[e_b] += 4.0 ** (b - m + e)
        if e_b == 0:
            continue  # zero or subnormal: its exponent flips depend on its mantissa (``pow``)
        for j in exp_j:
            if e_b == 1 << j:  # downward onto E = 0: (1 + f) 2^(E - bias) -> f 2^(1 - bias),
                alpha, beta = 1 - 2.0 ** (1 - e_b), 2.0 ** (1 - bias)  # d = alpha |w| + beta
                a[e_b] += alpha**2
                lin[e_b] += 2 * alpha * beta
                c[e_b] += beta**2
        for k in range(nj + 1):
            for rank, j in enumerate(exp_j):
                if (e_b >> j) & 1:  # downward: w -> w 2^-(2^j), never farther than |w|
                    if e_b != 1 << j:  # (onto E = 0: above)
                        up[e_b, k] += (1 - 2.0 ** -(2**j)) ** 2
                elif rank >= k and e_b | (1 << j) != n - 1:  # upward, not among the k highest
                    up[e_b, k] += (2.0 ** (2**j) - 1) ** 2
                else:  # among the k highest, or onto the all-ones exponent: inf or NaN
                    n_up[e_b, k] += 1
    big = torch.finfo(torch.float32).max
    nb = len(bits)  # T^2 is the mean over the covered bits: the tables hold sum / nb
    tables = {
        "a": a.float(),
        "c_mean": (c / nb).clamp(max=big).float(),
        "lin_mean": (lin / nb).float(),
        "a_up_mean": ((a.unsqueeze(1) + up) / nb).clamp(max=big).float(),
        "n_up": n_up,
        "jumps": torch.tensor([2.0 ** (2**j) - 1 for j in exp_j], dtype=torch.float64),
        "pow": torch.tensor([2.0 ** (2**j - bias) for j in exp_j]),
        # the smallest |w| of each normal E, 2^(E - bias) (0 for E = 0; inf past float32's range)
        "binade": torch.tensor([0.0] + [2.0 ** (e_b - bias) for e_b in range(1, n)]).float(),
        "m_step": torch.tensor([2.0 ** (b - m + 1 - bias) for b in bits if b < m]),
    }
    return {name: t.to(device) for name, t in tables.items()}


@lru_cache(maxsize=16)
def _owners(sizes: tuple[int, ...], device: str) -> torch.Tensor:
    """Which tensor each element of a concatenation of tensors of ``sizes`` comes from (int32;
    kept: a SAR step asks for the same sizes every step)."""
    counts = torch.tensor(sizes, device=device)
    return torch.repeat_interleave(
        torch.arange(len(sizes), device=device, dtype=torch.int32), counts
    )


_STORAGE = {  # format: (torch dtype of the stored value, integer view of its bits)
    "float16": (torch.float16, torch.int16),
    "bfloat16": (torch.bfloat16, torch.int16),
    "float32": (torch.float32, torch.int32),
}


def float_t2(
    ws: list[torch.Tensor], fm: FaultModel, kept: tuple[int, ...], *, count: bool = False
) -> tuple[torch.Tensor, list[int] | None]:
    """(T^2 of every element of ``ws``, concatenated: the mean over the covered bits of d_b^2,
    a flip that moves an element farther than S = ``UNCOVERED_SPAN`` x max|W| of its own tensor
    counting 0; with ``count``, per tensor the number of such (element, bit) sites, else None).

    All tensors in one pass (a SAR step computes T of every eligible weight): per-element work
    is a few ops over the concatenation, not a few ops per tensor."""
    f = B.get_format(fm.format)
    tab = _float_tables(fm.format, kept, str(ws[0].device))
    dtype, raw = _STORAGE[fm.format]
    sizes = [w.numel() for w in ws]
    flat = torch.cat([w.reshape(-1) for w in ws]) if len(ws) > 1 else ws[0].reshape(-1)
    stored = flat.to(dtype)
    # the biased exponent, straight from the stored bits (int32: index_select takes it)
    e_b = (stored.view(raw) >> f.mantissa_bits).int() & (2**f.exponent_bits - 1)
    x = stored.float()
    ax = x.abs()
    if len(ws) == 1:
        low, high = torch.stack(torch.aminmax(ax)).tolist()  # one host sync for both
        highs = [high]
    else:
        *highs, low = torch.stack([*(t.amax() for t in ax.split(sizes)), ax.min()]).tolist()
    spans = [UNCOVERED_SPAN * h for h in highs]
    nj = tab["jumps"].numel()
    tid = None
    if len(ws) > 1:
        tid = _owners(tuple(sizes), str(flat.device))
    if nj:
        # k = how many of its tensor's limits S / (2^(2^j) - 1) lie below |w|: the flips left
        # out. Per tensor and exponent E (binade [lo, 2 lo)): the limits below lo, plus the
        # next one if it lies below |w| (limits are >= 3x apart, so at most one falls inside a
        # binade). Two gathers and one exact float compare per element, for all tensors at once
        lim = (torch.tensor(spans, dtype=torch.float64).unsqueeze(1) / tab["jumps"].cpu()).float()
        lim = lim.to(flat.device)  # (tensors, J), ascending along J
        lo = tab["binade"].expand(len(ws), -1)  # (tensors, 2^ne)
        k0 = torch.searchsorted(lim, lo.contiguous(), out_int32=True)  # limits < lo
        nxt = lim.gather(1, k0.clamp(max=nj - 1).long())
        inside = torch.where((k0 < nj) & (nxt < 2 * lo), nxt, torch.inf)
        row = e_b if tid is None else e_b.add(tid, alpha=2**f.exponent_bits)
        k = torch.index_select(k0.view(-1), 0, row)
        k += ax > torch.index_select(inside.view(-1), 0, row)
        cell = k.add_(e_b, alpha=nj + 1)  # row e_b, column k
    else:
        cell = e_b
    t2 = torch.addcmul(
        torch.index_select(tab["c_mean"], 0, e_b),
        torch.index_select(tab["a_up_mean"].view(-1), 0, cell),
        x * x,
    ).addcmul_(torch.index_select(tab["lin_mean"], 0, e_b), ax)
    n_out = None
    if count:
        n_up = torch.index_select(tab["n_up"].view(-1), 0, cell)
        n_out = [int(c.sum()) for c in n_up.split(sizes)]
    bias = 2 ** (f.exponent_bits - 1) - 1
    if low >= 2.0 ** (1 - bias):  # no zero or subnormal element
        return t2, n_out
    sub = torch.nonzero(e_b == 0).view(-1)  # zeros and subnormals (few): exact, one by one
    # mantissa bit b moves f 2^(1 - bias) by 2^(b - M) 2^(1 - bias), possibly more than S when
    # max|W| is itself tiny; exponent bit j makes it (1 + f) 2^(2^j - bias)
    xs = ax[sub]
    d = torch.cat(
        [
            tab["m_step"].unsqueeze(1).expand(-1, xs.numel()),
            (1 + xs / 2.0 ** (1 - bias)) * tab["pow"].unsqueeze(1) - xs,
        ]
    )  # (bits, K)
    span = spans[0] if tid is None else torch.tensor(spans, device=flat.device)[tid[sub]]
    ok = d <= span
    t2[sub] = (tab["a"][0] * xs * xs + torch.where(ok, d * d, 0.0).sum(0)) / len(kept)
    if n_out is not None:
        owner = [0] * len(sub) if tid is None else tid[sub].tolist()
        for i, c in zip(owner, (~ok).sum(0).tolist()):
            n_out[i] += c
    return t2, n_out
