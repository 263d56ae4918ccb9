"""One self-contained HTML report of a study: plotly.js inlined, no network needed to open it.

``html_report(rows, ...)`` builds it from rows of the results table (any caller can pass its own
rows with the same columns; the dashboard's BER sweep becomes rows with ``rows_from_sweep``);
``write_report(dir, html)`` reads a study directory. The statistics (seeds pooled, verdicts,
cross-task summary) live in ``sar_core.experiments.study.summary``.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sar_core.experiments.study.summary import aggregate, rows_from_sweep, summary_rows, verdict

__all__ = ["aggregate", "html_report", "rows_from_sweep", "write_report"]

REQUIRED = (
    "task",
    "seed",
    "method",
    "fault",
    "level",
    "mean_accuracy",
    "ci95_low",
    "ci95_high",
    "clean_accuracy",
)
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8rem;overflow-x:auto;font-size:.82rem}
.note{color:#555;font-size:.9rem}.win{color:#007a3d}.loss{color:#b00020}
"""


def _pct(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def _pct_ci(t: tuple[float, float, float], signed: bool = False) -> str:
    m, lo, hi = t
    if not math.isfinite(m):
        return "n/a"
    f = (lambda v: f"{100 * v:+.1f}") if signed else (lambda v: f"{100 * v:.1f}")
    ci = f" [{f(lo)}, {f(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else " [n/a]"
    return f(m) + ci


def _table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _task_table(cells: Sequence[dict]) -> str:
    body = []
    for c in sorted(cells, key=lambda c: (c["fault"], c["level"])):
        v = "" if c["is_reference"] else verdict(c["delta"])
        delta = "reference" if c["is_reference"] else _pct_ci(c["delta"], signed=True)
        body.append(
            [
                html.escape(c["method"]),
                html.escape(f"{c['fault']} {c['level_key']}={c['level_label']}"),
                _pct(c["clean"]),
                _pct_ci(c["acc"]),
                f'<span class="{v}">{delta}</span>' if v else delta,
                str(c["seeds"]),
            ]
        )
    head = ("method", "fault", "clean %", "under faults % [95% CI]", "Δ vs ref (pt)", "seeds")
    return _table(head, body)


def _summary_table(cells: Sequence[dict]) -> str:
    rows = summary_rows(cells)
    if not rows:
        return '<p class="note">Only the reference method: no paired differences.</p>'
    body = [
        [
            html.escape(r["method"]),
            html.escape(r["fault"]),
            str(r["tasks"]),
            str(r["comparisons"]),
            f"{100 * r['mean_delta']:+.2f}",
            f"{r['wins']} / {r['ties']} / {r['losses']}",
            f"{100 * r['mean_clean_delta']:+.2f}",
            f"{100 * r['worst_clean_delta']:+.2f}",
        ]
        for r in rows
    ]
    head = (
        "method",
        "fault",
        "tasks",
        "task x level cells",
        "mean Δ (pt)",
        "wins / ties / losses",
        "mean clean Δ",
        "worst clean Δ",
    )
    return _table(head, body)


def _bars_figure(mine: Sequence[dict], task: str, fault: str):
    """One fault level: clean and faulty accuracy per method (a curve would be one point)."""
    from sar_core.plots.robustness import double_win_figure

    c0 = mine[0]
    fig = double_win_figure(
        [
            {
                "label": c["method"],
                "method": c["optimizer"],
                "clean_accuracy": c["clean"],
                "mean_accuracy": c["acc"][0],
                "ci95": [c["acc"][1], c["acc"][2]],
            }
            for c in mine
        ],
        fault_label=f"{fault} {c0['level_key']}={c0['level_label']}",
    )
    fig.update_layout(title=dict(text=f"{task}: clean and under {fault} faults (95% CI)"))
    return fig


def _curves_figure(cells: Sequence[dict], task: str, fault: str):
    from sar_core.plots.robustness import sweep_figure

    mine = [c for c in cells if c["task"] == task and c["fault"] == fault]
    if len({c["level"] for c in mine}) == 1:
        return _bars_figure(mine, task, fault)
    curves = []
    for method in dict.fromkeys(c["method"] for c in mine):
        cs = sorted((c for c in mine if c["method"] == method), key=lambda c: c["level"])
        curves.append(
            {
                "label": method,
                "method": cs[0]["optimizer"],
                "x": [c["level"] for c in cs],
                "mean": [c["acc"][0] for c in cs],
                "lo": [c["acc"][1] for c in cs],
                "hi": [c["acc"][2] for c in cs],
                "clean": cs[0]["clean"],
            }
        )
    key = mine[0]["level_key"]
    log_x = key.startswith("ber") and all(c["level"] > 0 for c in mine)
    return sweep_figure(
        curves,
        x_title=f"{key}{' (log scale)' if log_x else ''}",
        log_x=log_x,
        title=f"{task}: accuracy under {fault} faults (trials of all seeds pooled, 95% CI)",
    )


def _scatter_figure(rows: Sequence[Mapping], task: str):
    """Sharpness of each model against its accuracy at the harshest level of the first fault."""
    from sar_core.plots.robustness import sharpness_scatter

    mine = [r for r in rows if r["task"] == task and math.isfinite(r.get("sharpness", math.nan))]
    if not mine:
        return None
    fault = mine[0]["fault"]
    level = max(float(r["level"]) for r in mine if r["fault"] == fault)
    pts = [
        {
            "label": f"{r['method']} s{r['seed']}",
            "method": r.get("optimizer", r["method"]),
            "x": r["sharpness"],
            "y": r["mean_accuracy"],
            "lo": r["ci95_low"],
            "hi": r["ci95_high"],
        }
        for r in mine
        if r["fault"] == fault and float(r["level"]) == level
    ]
    measure = mine[0].get("sharpness_measure", "sharpness")
    return sharpness_scatter(
        pts,
        x_title=f"{measure} sharpness",
        title=f"{task}: sharpness vs accuracy under {fault} at {mine[0]['level_key']}={level:g}",
    )


def _fig_html(fig, i: int) -> str:
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"fig{i}", config={"displaylogo": False}
    )


def _check_rows(rows: Sequence[Mapping]) -> None:
    if not rows:
        raise ValueError("Invalid rows=[]: the study has no finished campaign; run it first")
    missing = [k for k in REQUIRED if k not in rows[0]]
    if missing:
        raise ValueError(f"Invalid rows: missing columns {missing}; required: {list(REQUIRED)}")


def html_report(
    rows: Sequence[Mapping],
    *,
    title: str = "SAR Lab study",
    description: str = "",
    spec_text: str | None = None,
    commands: Sequence[Mapping] = (),
    versions: Mapping[str, str] | None = None,
    double_win: Sequence[Mapping] = (),
) -> str:
    """The report as one HTML string (plotly.js inlined: opens offline).

    ``rows``: results-table rows (columns of ``results.RESULT_COLUMNS``; ``REQUIRED`` at least).
    ``commands``: dicts with ``command`` and optionally ``executor``, ``workers``, ``status``,
    ``seconds``, ``started``. ``double_win``: rows of the study's double_win table (a spec with
    ``[report]``), summarised over seeds in a "Double win" section.
    """
    from plotly.offline import get_plotlyjs

    _check_rows(rows)
    cells = aggregate(rows)
    parts, figs = [], 0
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    parts.append("<h2>Cross-task summary</h2>" + _summary_table(cells))
    parts.append(
        '<p class="note">Δ: accuracy minus the reference method\'s under identical fault '
        "patterns (paired trials), in points; a cell is a task at one fault level with the trials "
        "of all seeds pooled (95% t-interval over seeds x trials: fault-pattern noise, not "
        "training-seed noise). Win: interval above 0, loss: below, tie: otherwise.</p>"
    )
    for task in tasks:
        tc = [c for c in cells if c["task"] == task]
        n_test = tc[0].get("n_test")
        note = f' <span class="note">(test set: {n_test} samples)</span>' if n_test else ""
        parts.append(f"<h2>Task {html.escape(task)}{note}</h2>" + _task_table(tc))
        for fault in dict.fromkeys(c["fault"] for c in tc):
            parts.append(_fig_html(_curves_figure(cells, task, fault), figs))
            figs += 1
        sc = _scatter_figure(rows, task)
        if sc is not None:
            parts.append(_fig_html(sc, figs))
            figs += 1
    if double_win:
        parts.append(_double_win_section(double_win))
    parts.append(_provenance(spec_text, commands, versions))
    head = (
        f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script>"
    )
    intro = (
        f"<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>"
        f'<p class="note">Generated {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; '
        f"{len(tasks)} tasks, {len(rows)} result rows, {figs} figures.</p>"
    )
    return f"<!DOCTYPE html><html><head>{head}</head><body>{intro}{''.join(parts)}</body></html>"


def _double_win_section(rows: Sequence[Mapping]) -> str:
    """Per task and model (or mitigation): means over seeds, Δ vs the reference with its
    seed-level interval and verdict, attack flips per seed, overheads, the double win."""
    from sar_core.experiments.study.double_win import summary_rows

    body = []
    for r in summary_rows(rows):
        d, c = r["delta"], r["clean_delta"]
        body.append(
            [
                html.escape(str(r["task"])),
                html.escape(str(r["name"])),
                _pct(r["clean_accuracy"]),
                _pct(r["fault_accuracy"]),
                "—" if d is None else _pct_ci((d["mean"], d["lo"], d["hi"]), signed=True),
                "—" if d is None else html.escape(r["verdict"]),
                "—" if c is None else _pct_ci((c["mean"], c["lo"], c["hi"]), signed=True),
                ", ".join("n/a" if f is None else str(f) for f in r["attack_flips_per_seed"]),
                *("n/a" if r[k] is None else f"{r[k]:.0f}" for k in ("extra_bits", "extra_ops")),
                {None: "—", True: "yes", False: "no"}[r["double_win"]],
            ]
        )
    head = (
        "task",
        "model",
        "clean",
        "under faults",
        "Δ vs reference [95% CI over seeds]",
        "verdict",
        "clean Δ [95% CI]",
        "attack flips per seed",
        "extra bits",
        "extra ops",
        "double win",
    )
    return (
        "<h2>Double win</h2>"
        + _table(head, body)
        + '<p class="note">The double-win report (sar_core.experiments.report) per task and '
        "seed; means over seeds. Intervals are seed-level: Student t over the per-seed paired "
        "means. Double win: Δ a win, clean accuracy not measurably lower, zero extra bits and "
        "operations. Attack flips: n/a when the budget ran out first. Latency and training "
        "time are measured, not tabulated here (benchmarks/double_win.py reports them).</p>"
    )


def _provenance(spec_text, commands, versions) -> str:
    out = []
    if commands:
        body = [
            [
                html.escape(" ".join(c.get("command") or ["(library call)"])),
                html.escape(str(c.get("executor", ""))),
                html.escape(str(c.get("worker_cpus", c.get("workers", "")))),
                html.escape(str(c.get("status", ""))),
                f"{c['seconds']:.1f}" if isinstance(c.get("seconds"), (int, float)) else "",
                html.escape(str(c.get("started", ""))),
            ]
            for c in commands
        ]
        head = ("command", "executor", "workers", "status", "wall s", "started (UTC)")
        out.append("<h2>Commands</h2>" + _table(head, body))
    if spec_text is not None:
        out.append(f"<h2>Study spec</h2><pre id='spec'>{html.escape(spec_text)}</pre>")
    if versions:
        body = [[html.escape(k), html.escape(str(v))] for k, v in versions.items()]
        out.append("<h2>Software versions</h2>" + _table(("package", "version"), body))
    return "".join(out)


def write_report(study_dir: str | Path, html_path: str | Path) -> dict:
    """Write the HTML report of a study directory; returns its path and size."""
    from sar_core.experiments.study.cache import Store, atomic_write
    from sar_core.experiments.study.results import read_table
    from sar_core.experiments.study.run import versions
    from sar_core.experiments.study.spec import parse_spec

    d = Path(study_dir)
    table = d / "results.parquet"
    if not table.is_file():
        raise ValueError(
            f"Invalid dir={str(study_dir)!r}: no results.parquet; run `study run` first"
        )
    spec_text = (d / "spec.toml").read_text(encoding="utf-8")
    spec = parse_spec(spec_text)
    runs = Store(d).runs()
    dw = d / "double_win.parquet"
    text = html_report(
        read_table(table),
        title=f"SAR Lab study: {spec.name}",
        description=spec.description,
        spec_text=spec_text,
        commands=runs,
        versions=(runs[-1].get("versions") if runs else None) or versions(),
        double_win=read_table(dw) if dw.is_file() else (),
    )
    out = Path(html_path)
    atomic_write(out, text.encode("utf-8"))
    return {"html": str(out), "bytes": out.stat().st_size, "study": spec.name}
