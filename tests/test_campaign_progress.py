"""Progress of long campaigns: reported after every trial, without per-trial copies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sar_core.analysis import campaign as C
from sar_core.cli.common import Progress
from sar_core.faults.model import FaultModel


def _mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)


FM = FaultModel(format="float32", ber=2e-3, include_bias=True)


def test_run_campaign_progress_counts_every_trial_and_copies_nothing(data, monkeypatch):
    X, y = data
    ref = list(C.iter_compare([_mlp(0)], X, y, FM, trials=37, seed=3))[-1][0]

    def no_copies(self):
        raise AssertionError("snapshot called: a per-trial copy")

    monkeypatch.setattr(C.CampaignResult, "snapshot", no_copies)
    seen = []
    res = C.run_campaign(_mlp(0), X, y, FM, trials=37, seed=3, progress=seen.append)
    assert seen == list(range(1, 38))
    assert (res.accuracy, res.loss, res.flips, res.changed) == (
        ref.accuracy, ref.loss, ref.flips, ref.changed,
    )  # fmt: skip


def test_compare_progress_and_results_equal_iter_compare(data):
    X, y = data
    models = [_mlp(0), _mlp(1)]
    ref = list(C.iter_compare(models, X, y, FM, trials=25, seed=1))[-1]
    seen = []
    out = C.compare(models, X, y, FM, trials=25, seed=1, progress=seen.append)
    assert seen == list(range(1, 26))
    for r, q in zip(out["results"], ref):
        assert (r.accuracy, r.loss, r.flips) == (q.accuracy, q.loss, q.flips)


def test_throttled_bar_draws_first_and_last(capsys, monkeypatch):
    clock = iter([0.0, 0.01, 0.02, 0.03, 0.5, 0.51, 0.52])  # t0, then one reading per call
    monkeypatch.setattr("sar_core.cli.common.time.perf_counter", lambda: next(clock))
    bar = Progress(5, "inject", quiet=False, min_interval_s=0.1)
    for done in range(1, 6):
        bar(done)
    err = capsys.readouterr().err
    drawn = [line.split("] ")[1].split(" ")[0] for line in err.split("\r")[1:]]
    assert drawn == ["1/5", "4/5", "5/5"]  # 2 and 3 within 0.1 s of the last draw
    assert err.endswith("\n")
