"""The study command's progress: the one CLI progress bar (cli.common.Progress) with failures."""

from __future__ import annotations

from sar_core.cli.study import _progress


def test_study_progress_is_the_common_bar_with_a_failure_count(capsys):
    on_event = _progress(quiet=False)
    events = [("ok", 1), ("failed", 2), ("ok", 3), ("ok", 4)]
    for status, done in events:
        on_event({"status": status, "done": done, "total": 4, "kind": "train"})
    err = capsys.readouterr().err
    lines = err.split("\r")[1:]
    assert lines[0].startswith("study [" + "#" * 7 + "." * 23 + "] 1/4")
    assert lines[1].startswith("study (1 failed) [" + "#" * 15 + "." * 15 + "] 2/4")
    assert lines[3].startswith("study (1 failed) [" + "#" * 30 + "] 4/4") and err.endswith("\n")


def test_quiet_study_progress_writes_nothing(capsys):
    on_event = _progress(quiet=True)
    on_event({"status": "failed", "done": 1, "total": 1, "kind": "eval"})
    assert capsys.readouterr().err == ""
