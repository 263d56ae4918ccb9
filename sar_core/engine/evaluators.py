"""Evaluators of the Monte Carlo core: faulty logits and scores for many trials (see montecarlo).

``Full`` (any model) and ``Resume`` (an ``nn.Sequential``, restarted at the first touched child)
are exact: bit-identical to a full forward pass with the faulty parameters. ``Batched`` evaluates
K trials at once on a chain of Linear layers with sparse corrections (float32 rounding differs;
tolerance stated in sar_core.engine.montecarlo). What an evaluator caches is a copy that no module
can overwrite: in-place modules (``ReLU(inplace=True)``, ``x += 1``), BatchNorm in eval mode and
Dropout give the results of full forward passes (see ``sar_core.faults.chain``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import nn

from sar_core.engine.evaluate import logits_of, score_batch, score_logits
from sar_core.faults.chain import CachedChain, owner, sequence
from sar_core.faults.injector import ChunkDelta, Delta

EVALUATORS = ("auto", "full", "resume", "batched")
# "auto" takes the batched evaluator only while a trial changes at most this fraction of the
# weights: its sparse corrections cost O(flips), a dense pass O(weights). Re-measured for the
# block evaluator (`python benchmarks/run.py --only auto --repeats 5`, digits MLP demo, int8,
# 100 trials, 1 thread; benchmarks/results/run_v4_auto.md): resume / batched 2.7x at 0.8% of
# the weights hit, 2.0x at 3.2%, 1.7x at 6.4%, 1.2x at 9.6%, 0.9x at 13% (an earlier run: 3.4x,
# 2.2x, 1.2x, 0.9x, 1.2x). The switch stays at 1.5%, where batched is clearly faster: moving it
# would move results between evaluators (float32 rounding) for rates between.
AUTO_BATCHED_MAX_HIT_FRACTION = 0.015
BLOCK = 24  # trials per block of the low-rank update and the layers after it (Batched._block)
WORKSPACE_MAX_BYTES = 32 * 2**20  # larger scratch buffers belong to one evaluator alone
_WORKSPACE = threading.local()  # per thread: scratch buffers shared by Batched evaluators


def _workspace() -> dict:
    """This thread's scratch buffers (see ``Batched._buf``)."""
    if not hasattr(_WORKSPACE, "buffers"):
        _WORKSPACE.buffers = {}
    return _WORKSPACE.buffers


# exact types (a subclass may override forward): functions of each value alone, any layout
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Identity)


def as_chunk(deltas: ChunkDelta | list[Delta]) -> ChunkDelta:
    """A chunk of trials, from a ``ChunkDelta`` or a list of per-trial deltas."""
    return deltas if isinstance(deltas, ChunkDelta) else ChunkDelta.stack(list(deltas))


class Full:
    """Exact evaluator for any model: one full forward pass per trial with the faulty parameters.

    ``X`` is copied, and ``logits_of`` runs every pass on a copy of its batch, so a model that
    writes into its input changes neither the caller's data nor the next trial's input.
    """

    def __init__(self, model: nn.Module, params: dict[str, torch.Tensor], X, y) -> None:
        self.model, self.params, self.y = model, params, y
        self.X = X.clone()
        self.max_chunk = 64

    def logits(self, delta: Delta) -> torch.Tensor:
        """Logits (N, C) with the delta's values in the deployed parameters."""
        params = dict(self.params)
        params.update(_faulty(self.params, delta))
        return logits_of(self.model, params, self.X)

    def scores(self, deltas: ChunkDelta | list[Delta]) -> list[tuple[float, float]]:
        """(accuracy, loss) of every trial of the chunk, one exact pass each."""
        chunk = as_chunk(deltas)
        out = []
        for k in range(chunk.size):
            s = score_logits(self.logits(chunk.trial(k)), self.y)
            out.append((s.accuracy, s.loss))
        return out


def _faulty(params: dict[str, torch.Tensor], delta: Delta) -> dict[str, torch.Tensor]:
    """New tensors of the parameters the delta changes, with its values."""
    out = {}
    for name, (idx, vals) in delta.values.items():
        t = params[name].clone()
        t.view(-1)[idx] = vals
        out[name] = t
    return out


class Resume(Full):
    """Exact evaluator: restart a Sequential at the first touched child from cached activations.

    The cache is a ``CachedChain``: copies no child can overwrite, so in-place modules give the
    results of full forward passes, bit for bit.
    """

    def __init__(self, model: nn.Sequential, params: dict[str, torch.Tensor], X, y) -> None:
        super().__init__(model, params, X, y)
        self.chain = CachedChain(model, params, X)

    def logits(self, delta: Delta) -> torch.Tensor:
        """Logits (N, C) with the delta's values in the deployed parameters."""
        changed = _faulty(self.params, delta)
        start = min(self.chain.index[owner(n)] for n in changed)
        return self.chain.forward_from(start, changed)


class Batched:
    """K trials at once on a chain of Linear layers and elementwise activations (see module doc).

    Activations are kept feature-major, (K, features, N), so a changed weight's correction is one
    row: index_add of dW[r, c] * x[c, :] into row r. With j the first touched Linear and j2 the
    next one, only the units S_k of layer j that trial k touches change: layer j is computed on
    S_k alone (clean output + dW x), and layer j2 adds the low-rank update W2'[:, S_k] dH[S_k]
    (a batched matmul of inner size |S_k|, not layer j2's fan-in) + dW2 h to its cached clean
    output; layers after j2 are batched matmuls with per-trial weights. From the touched units on,
    a chunk runs in blocks of ``BLOCK`` trials sorted by their number of changes (``_block``).
    """

    def __init__(self, model, params: dict[str, torch.Tensor], X, y, memory_mb: float) -> None:
        self.children = sequence(model)
        self.params, self.X, self.y = params, X, y
        self.linear = [i for i, (_, m) in enumerate(self.children) if isinstance(m, nn.Linear)]
        with torch.no_grad():
            acts = [X.t().contiguous()]  # (features, N), a copy of X
            for name, m in self.children:
                # a copy: an in-place child (ReLU(inplace=True)) must not overwrite acts[-1]
                acts.append(self._apply(name, m, acts[-1].clone(), None))
        self.acts = acts  # acts[i] is the input of child i, feature-major; never passed to a child
        # per trial of a chunk: the gathered columns W2'[:, S_k] and the logits hold at most N
        # max-width values, the per-trial weights at most all parameters (the block buffers,
        # BLOCK trials wide, do not grow with the chunk)
        width = max(a.shape[0] for a in acts[1:])
        per_trial = 4 * (X.shape[0] * width + sum(p.numel() for p in params.values()))
        self.max_chunk = int(max(1, min(256, memory_mb * 2**20 // per_trial)))
        self._cache: dict = {}
        self._scratch: dict[tuple, torch.Tensor] = {}  # buffers too large to share
        self._device = str(X.device)
        self._wt: dict[str, torch.Tensor] = {}  # W^T of the Linear weights, built on first use
        self.owner = {
            f"{n}.{k}": i for i, (n, _) in enumerate(self.children) for k in ("weight", "bias")
        }

    @staticmethod
    def applies(model: nn.Module, params: dict[str, torch.Tensor], X: torch.Tensor) -> bool:
        """True for a Sequential of Linear/elementwise children on 2-D input with finite weights.

        Children must be of these exact types (a subclass may override ``forward``)."""
        ch = sequence(model) if isinstance(model, nn.Sequential) else None
        ok_child = all(type(m) in (nn.Linear, *ELEMENTWISE) for _, m in ch or [])
        finite = all(bool(torch.isfinite(p).all()) for p in params.values())
        return bool(ch) and ok_child and X.dim() == 2 and finite and X.shape[0] <= 65536

    def _apply(self, name: str, m: nn.Module, h: torch.Tensor, chunk, scratch=False, trials=None):
        """Child on feature-major h: (I, N) or (K, I, N) -> (O, N) or (K, O, N).

        ``scratch``: h is this evaluator's own buffer, so an exact ReLU runs in place (the same
        values as ``m(h)``, without a new (K, O, N) tensor). ``trials`` (b, e): h holds trials
        b .. e - 1 of the chunk."""
        if not isinstance(m, nn.Linear):
            return torch.relu_(h) if scratch and type(m) is nn.ReLU else m(h)  # any layout
        w, b = (self._param(f"{name}.{k}", chunk, trials) for k in ("weight", "bias"))
        out = torch.matmul(w, h)  # (O, I) or (K, O, I) times (I, N) or (K, I, N)
        return out if b is None else out.add_(b.unsqueeze(-1))

    def _buf(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        """A scratch tensor of ``shape`` (contents undefined), reused from block to block and,
        up to ``WORKSPACE_MAX_BYTES``, by every Batched evaluator of this thread: fresh large
        tensors cost a page fault per 4 KiB, more than the arithmetic done in them (a new
        evaluator per campaign paid ~0.1x of the dense limit in faults). A buffer lives only
        within one ``logits`` call, so evaluators that take turns can share it."""
        n = math.prod(shape)
        dtype = self.X.dtype
        store = _workspace() if n * dtype.itemsize <= WORKSPACE_MAX_BYTES else self._scratch
        full_key = (key, dtype, self._device)
        buf = store.get(full_key)
        if buf is None or buf.numel() < n:
            buf = store[full_key] = torch.empty(n, dtype=dtype, device=self.X.device)
        return buf[:n].view(shape)

    def _param(self, name: str, chunk: ChunkDelta | None, trials=None) -> torch.Tensor | None:
        """Parameter ``name``: deployed (O, I), or per trial (K, O, I) when the chunk changes it
        (built once per chunk; ``trials`` (b, e): only trials b .. e - 1)."""
        if name not in self.params:
            return None
        base = self.params[name]
        if chunk is None or name not in chunk.values:
            return base
        key = ("param", name)
        if key not in self._cache:
            per = self._buf(name, (chunk.size, *base.shape))
            per.copy_(base.expand_as(per))
            k, idx, vals = chunk.values[name]
            per.view(chunk.size, -1)[k, idx] = vals
            self._cache[key] = per
        per = self._cache[key]
        return per if trials is None else per[trials[0] : trials[1]]

    def _changes(self, pname: str, chunk: ChunkDelta):
        """A parameter's changed entries over the chunk, or None: (trial, row, column or None for
        a bias, dW, {trial: position of its first entry} at the block edges), built once."""
        key = (id(chunk), pname)
        if key not in self._cache:
            ch = chunk.values.get(pname) if pname in self.params else None
            if ch is not None:
                k, idx, vals = ch
                dv = vals - self.params[pname].view(-1)[idx]
                base = self.params[pname]
                row, col = idx, None
                if base.dim() == 2:
                    row = torch.div(idx, base.shape[1], rounding_mode="floor")
                    col = idx - row * base.shape[1]
                edges = [*range(0, chunk.size, BLOCK), chunk.size]
                pos = torch.searchsorted(k, torch.tensor(edges, device=k.device)).tolist()
                ch = (k, row, col, dv, dict(zip(edges, pos)))  # entries are sorted by trial
            self._cache[key] = ch
        return self._cache[key]

    def _correct(self, Z: torch.Tensor, j: int, deltas, A: torch.Tensor, slot=None, trials=None):
        """Z (K, W, N) += dW A + db of Linear child j (A (I, N) clean); rows mapped by ``slot``.

        ``trials`` (b, e): Z holds trials b .. e - 1 of the chunk (their changes alone)."""
        name = self.children[j][0]
        K, w, n = Z.shape
        flat = Z.view(K * w, n)
        for pname in (f"{name}.weight", f"{name}.bias"):
            ch = self._changes(pname, deltas)
            if ch is None:
                continue
            k, row, col, dv, at = ch
            if trials is not None:
                lo, hi = at[trials[0]], at[trials[1]]
                if hi <= lo:
                    continue
                k, row, dv = k[lo:hi], row[lo:hi], dv[lo:hi]
                col = None if col is None else col[lo:hi]
            if slot is not None:
                row = slot(k, row)
            if trials is not None:
                k = k - trials[0]
            if col is not None:  # x[c, :] * dW[r, c], built in a scratch buffer
                buf = self._buf("contrib", (col.numel(), n))
                contrib = torch.index_select(A, 0, col, out=buf).mul_(dv[:, None])
            else:  # contiguous: index_add_ from a stride-0 source is several times slower
                contrib = dv[:, None].expand(-1, n).contiguous()
            flat.index_add_(0, k * w + row, contrib)  # dW[r, c] * x[c, :] into row r

    def _touched_units(self, j: int, deltas: ChunkDelta):
        """Per trial the sorted output units of Linear j it changes, padded: (P (K, S), slot fn,
        units per trial (K,)). ``slot(k, units)``: where trial k holds each unit in P[k], -1
        where it does not change it."""
        name, lin = self.children[j]
        o, K = lin.out_features, deltas.size
        keys = []
        for pname in (f"{name}.weight", f"{name}.bias"):
            ch = self._changes(pname, deltas)
            if ch is not None:
                keys.append(ch[0] * o + ch[1])  # (trial, output unit)
        u = torch.unique(torch.cat(keys))  # sorted (trial, unit) keys
        kk, rr = u // o, u % o
        counts = torch.bincount(kk, minlength=K)
        first = torch.cumsum(counts, 0) - counts  # position of each trial's first unit in u
        P = rr[(first + counts - 1).clamp(min=0)].unsqueeze(1).repeat(1, int(counts.max()))
        P[kk, torch.arange(u.numel(), device=u.device) - first[kk]] = rr
        # pads repeat the trial's last unit and receive no correction: dH = 0 there
        table = torch.full((K * o,), -1, dtype=torch.int64, device=u.device)
        table[u] = torch.arange(u.numel(), device=u.device) - first[kk]
        return P, lambda k, rows: table[k * o + rows], counts

    def logits(self, deltas: ChunkDelta | list[Delta], j: int) -> torch.Tensor:
        """Logits (K, C, N) (feature-major) of trials whose first touched child is Linear j."""
        deltas = as_chunk(deltas)
        self._cache = {}  # per chunk: changes dW and per-trial weights of each parameter
        later = [i for i in self.linear if i > j]
        K = deltas.size
        with torch.no_grad():
            if not later:  # last layer: full width is small
                h = self.acts[j + 1].expand(K, -1, -1).clone()
                self._correct(h, j, deltas, self.acts[j])
                for name, m in self.children[j + 1 :]:
                    h = self._apply(name, m, h, deltas)  # elementwise
                return h
            j2 = later[0]
            P, slot, counts = self._touched_units(j, deltas)
            wg = self._gathered_columns(j2, P, slot, deltas)  # (K, O, S): W2'[:, S_k] per trial
            width = counts.clamp(min=1).tolist()  # |S_k|
            out = None
            for b in range(0, K, BLOCK):
                e = min(b + BLOCK, K)
                h = self._block(j, j2, deltas, (P, slot, wg, width), (b, e))
                if out is None:
                    out = h.new_empty((K, *h.shape[1:]))
                out[b:e] = h  # a copy: h may be a buffer the next block reuses
        return out  # (K, C, N)

    def _block(self, j: int, j2: int, deltas: ChunkDelta, units, trials) -> torch.Tensor:
        """Logits (e - b, C, N) of trials b .. e - 1 (see the class doc), all on one block:
        the touched units of Linear j (clean output + dW x), their change dH after the
        elementwise children, Linear j2's output as its clean output + W2'[:, S_k] dH + dW2 h,
        then the later children.

        A block's activations stay in the CPU cache from one step to the next, and its width is
        the block's largest |S_k|: callers sort a chunk's trials by their number of changes
        (``scores``), so the pads (units that repeat a touched one; dH = 0) are few."""
        P, slot, wg, width = units
        b, e = trials
        B, sb, n = e - b, max(width[b:e]), self.X.shape[0]
        rows = P[b:e, :sb].reshape(-1)
        Zs = torch.index_select(self.acts[j + 1], 0, rows, out=self._buf("zs", (B * sb, n)))
        Zs = Zs.view(B, sb, n)  # clean output of layer j, units S_k
        self._correct(Zs, j, deltas, self.acts[j], slot, trials)
        for name, m in self.children[j + 1 : j2]:
            Zs = self._apply(name, m, Zs, None, scratch=True)  # elementwise
        clean = torch.index_select(self.acts[j2], 0, rows, out=self._buf("hs", (B * sb, n)))
        dH = Zs.sub_(clean.view(B, sb, n))  # 0 on pads
        h = self._buf("z2", (B, wg.shape[1], n))
        torch.baddbmm(self.acts[j2 + 1].expand(B, -1, -1), wg[b:e, :, :sb], dH, out=h)
        self._correct(h, j2, deltas, self.acts[j2], trials=trials)  # + dW2 h + db2
        scratch = True
        for name, m in self.children[j2 + 1 :]:
            out = self._apply(name, m, h, deltas, scratch, trials)
            scratch = scratch and out is h  # a Linear's output is a new tensor
            h = out
        return h

    def _gathered_columns(self, j2: int, P: torch.Tensor, slot, chunk: ChunkDelta):
        """W2'[:, P[k]] per trial (K, O, S): the deployed columns, then each trial's faulty
        values of W2 written at the slot of their column in P[k] (pads keep deployed, finite
        weights: they multiply dH = 0, so a trial's result never depends on its pads)."""
        name = f"{self.children[j2][0]}.weight"
        w = self.params[name]  # (O, I)
        K, S = P.shape
        if name not in self._wt:  # rows of W^T are W's columns: a row gather is fast
            self._wt[name] = w.t().contiguous()  # (I, O)
        wgt = torch.index_select(self._wt[name], 0, P.view(-1)).view(K, S, w.shape[0])
        if name in chunk.values:
            k, idx, vals = chunk.values[name]
            r, c = idx // w.shape[1], idx % w.shape[1]
            s = slot(k, c)
            hit = s >= 0  # the other changes of W2 act through dW2 h alone (see _correct)
            wgt[k[hit], s[hit], r[hit]] = vals[hit]
        return wgt.transpose(1, 2)  # (K, O, S), a view: bmm reads either layout

    def scores(self, deltas: ChunkDelta | list[Delta]) -> list[tuple[float, float]]:
        """(accuracy, loss) of every trial of the chunk (each must change a parameter)."""
        chunk = as_chunk(deltas)
        # changes per trial of each child's parameters
        per_child = np.zeros((len(self.children), chunk.size), dtype=np.int64)
        for pname, (k, _, _) in chunk.values.items():
            per_child[self.owner[pname]] += torch.bincount(k, minlength=chunk.size).numpy()
        first = np.argmax(per_child > 0, axis=0)  # first touched child (each trial has one)
        out: list = [None] * chunk.size
        for j in np.unique(first).tolist():
            group = np.flatnonzero(first == j)
            # by the number of changes of child j: a block of trials of similar work pads
            # little in _two_layers (each trial's result does not depend on its block-mates)
            group = group[np.argsort(per_child[j, group], kind="stable")]
            logits = self.logits(chunk.select(group), j)
            for i, r in zip(group.tolist(), score_batch(logits, self.y, class_dim=1)):
                out[i] = r
        return out


def make_evaluator(
    kind: str, model, params, X, y, memory_mb: float, *, expected_flips: float | None = None
):
    """The evaluator ``kind`` for one model.

    "auto" picks "batched" where it applies and a trial is expected to hit at most
    ``AUTO_BATCHED_MAX_HIT_FRACTION`` of the weights (``expected_flips``: stored bits flipped per
    trial; None: unknown, batched), else "resume"; "resume" on a model that is not an
    ``nn.Sequential``, or on more than 4096 rows (``logits_of``'s batch), is "full".
    """
    if kind == "auto":
        n_weights = sum(int(p.numel()) for p in params.values())
        sparse = expected_flips is None or (
            expected_flips <= AUTO_BATCHED_MAX_HIT_FRACTION * max(n_weights, 1)
        )
        kind = "batched" if sparse and Batched.applies(model, params, X) else "resume"
    elif kind == "batched" and not Batched.applies(model, params, X):
        raise ValueError(
            "Invalid evaluator='batched': the model is not a Sequential of Linear layers "
            "and elementwise activations with finite deployed weights; use 'resume'"
        )
    if kind == "batched":
        return Batched(model, params, X, y, memory_mb)
    if kind == "resume" and isinstance(model, nn.Sequential) and X.shape[0] <= 4096:
        return Resume(model, params, X, y)
    return Full(model, params, X, y)
