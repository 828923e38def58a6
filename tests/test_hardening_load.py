"""The CI-sized run of bench/load_test.py: 8 gradio_client users x 2 requests of 64 px photos against ``python app.py``.

Nothing may fail except with a clean 'queue full' (and with a queue of 16, nothing is refused at all); the server
survives, and its RSS stays within a bound while it serves. The full-size run is the script itself (see its docstring).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_bench

pytest.importorskip("gradio_client")

REPO = Path(__file__).resolve().parents[1]
RSS_GROWTH_BOUND = 768 << 20  # peak minus before: 1 conversion of 64 px at a time needs far less


def _load_test_module():
    return load_bench("load_test")


def test_eight_users_two_requests_each(hayao_pt: Path, tmp_path: Path) -> None:
    load_test = _load_test_module()
    report = load_test.run(users=8, requests=2, size=64, weights=hayao_pt, app_args=("--max-queue", "16"),
                           workdir=tmp_path)
    print(report.summary())
    assert report.failures == []
    assert report.server_alive
    assert report.ok == 16 and report.queue_full == 0  # 8 users never exceed a queue of 16
    assert len(report.latencies) == 16 and report.pct(0.95) >= report.pct(0.5) > 0
    assert 0 < report.rss_before <= report.rss_peak
    assert report.rss_peak - report.rss_before < RSS_GROWTH_BOUND, report.summary()


def test_a_small_queue_refuses_cleanly(hayao_pt: Path, tmp_path: Path) -> None:
    """Eight users against a queue of 2: the surplus is refused with 'queue full', and nothing else fails."""
    load_test = _load_test_module()
    report = load_test.run(users=8, requests=1, size=256, weights=hayao_pt,
                           app_args=("--max-queue", "2", "--concurrency", "1"), workdir=tmp_path)
    print(report.summary())
    assert report.failures == [] and report.server_alive
    assert report.ok + report.queue_full == 8
    assert report.queue_full >= 1 and report.ok >= 3  # one running plus two waiting were always accepted
