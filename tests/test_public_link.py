"""What a hostile user of a public link can do, tried against the real app on 127.0.0.1 over raw HTTP.

Each test replays one group of ``bench/attack.py`` (the same requests the script prints a table for) and asserts
every row held, next to a control that shows the same route still serves an honest request. The numbers in the
names are the items of issue 12.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import load_bench
from PIL import Image

pytest.importorskip("gradio_client")
pytest.importorskip("prometheus_client")

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 30.0
GRACE_S = 1.0  # ANIMEGAN_CLIENT_GRACE of the app under attack
MAX_AGE_S = 4


attack = load_bench("attack")


def _assert_held(rows) -> None:
    failed = [f"[{r.item}] {r.attack}: {r.observed}" for r in rows if not r.held]
    assert not failed, "\n".join(failed)
    assert rows


@pytest.fixture(scope="module")
def hostile(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The app with metrics and MCP on, a 5 s timeout and a 4 s max age; a secret image, a symlink to it and a FIFO
    planted on its disk. Yields (Raw client, Server facts)."""
    tmp = tmp_path_factory.mktemp("hostile")
    upload_dir = tmp / "uploads"
    secret, folder = attack.plant(tmp, upload_dir)
    args = ["--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--timeout", str(TIMEOUT_S),
            "--temp-max-age", str(MAX_AGE_S), "--result-cache-size", "0", "--max-queue", "64", "--metrics", "--mcp"]
    with attack.running_app(args, tmp / "app", env={"GRADIO_TEMP_DIR": str(upload_dir), "TMPDIR": str(tmp),
                                                       "ANIMEGAN_CLIENT_GRACE": str(GRACE_S)}) as app:
        yield attack.Raw(app.url), attack.Server(app.url, app.proc.pid, upload_dir, secret, folder, app.log)


def _honest(raw, side: int = 48) -> dict:
    """Control: an uploaded photo through the same raw route converts."""
    path = raw.upload(attack.small_jpeg(64), "honest.jpg")
    status, msg = raw.call(raw.fn_index("stylize"), attack.stylize_data(
        {"path": path, "meta": {"_type": "gradio.FileData"}}, side=side))
    assert status == 200 and msg["success"], msg
    return msg


def test_1_server_files_are_never_read_and_say_nothing(hostile) -> None:
    raw, server = hostile
    rows = attack.a1_server_files(raw, server)
    _assert_held(rows)
    assert any("symlink" in r.attack for r in rows) and any("FIFO" in r.attack for r in rows)
    assert all((r.extra.get("rss_growth") or 0) < 50 << 20 for r in rows)  # /dev/zero was not read
    out = _honest(raw)["output"]["data"]
    assert out[0]["path"].endswith(".png") and out[1].startswith("Hayao style")


def test_2_no_event_outside_the_queue_decodes_a_photo(hostile) -> None:
    _assert_held(attack.a2_unqueued_decode(*hostile))


def test_3_only_listed_decoders_run_and_none_for_long(hostile) -> None:
    rows = attack.a3_decoders(*hostile, TIMEOUT_S)
    _assert_held(rows)
    assert "more than 100 progressive scans" in rows[1].observed
    assert "not a supported image (PNG, JPEG, WebP, GIF, BMP or TIFF)" in rows[0].observed


def test_4_request_bodies_are_bounded_and_nothing_is_fetched(hostile) -> None:
    _assert_held(attack.a4_bodies(*hostile))
    _honest(hostile[0])


def test_5_cut_off_uploads_are_removed(hostile) -> None:
    _assert_held(attack.a5_partial_uploads(*hostile, wait_s=MAX_AGE_S + 15))


def test_6_metrics_labels_come_from_a_closed_set(hostile) -> None:
    raw, server = hostile
    _assert_held(attack.a6_metrics(raw, server, requests=12))
    text = raw.http.get("metrics").text
    assert 'style="unknown"' in text and 'outcome="unknown_style"' in text
    assert "xxxx" not in text


def test_7_work_nobody_waits_for_stops(hostile, photos: dict[str, Path], tmp_path: Path) -> None:
    raw, server = hostile
    _assert_held(attack.a7_abandoned(raw, server, jobs=2))
    # Control: a client that listens (gradio_client) gets a conversion that outlasts the grace period.
    from gradio_client import Client, handle_file

    slow = tmp_path / "slow.jpg"  # 0.8 MP: one whole-image pass of a few seconds on 2 cores
    Image.open(photos["kyoto_street_kimono"]).convert("RGB").resize((1024, 768)).save(slow, quality=90)
    started = time.monotonic()
    png, _text = Client(raw.url, verbose=False, download_files=str(tmp_path)).predict(
        handle_file(str(slow)), "hayao", 0, False, api_name="/stylize")
    assert Image.open(png).size == (1024, 768)
    assert time.monotonic() - started > GRACE_S, "the control must outlast the grace period"


def test_8_every_failure_a_user_can_cause_has_a_message(hostile) -> None:
    raw, server = hostile
    before = raw.http.get("metrics").text
    _assert_held(attack.a8_messages(raw, server))
    after = raw.http.get("metrics").text
    assert _count(after, 'outcome="bad_request"') >= _count(before, 'outcome="bad_request"') + 3
    assert _count(after, 'reason="unknown_endpoint"') >= 1


def _count(metrics: str, label: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if label in line and line.startswith("animegan_") and not line.startswith("#"))


def test_9_login_covers_every_route(hayao_pt: Path, tmp_path: Path) -> None:
    args = ["--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--metrics", "--mcp",
            "--auth", "alice:s3cret-pass"]
    with attack.running_app(args, tmp_path, env={"GRADIO_TEMP_DIR": str(tmp_path / "uploads")}) as app:
        _assert_held(attack.a9_auth(attack.Raw(app.url), attack.Server(app.url), "alice", "s3cret-pass"))
        assert httpx.get(f"{app.url}metrics", timeout=10).status_code == 401
        logged = httpx.Client(base_url=app.url, timeout=10)
        assert logged.post("login", data={"username": "alice", "password": "s3cret-pass"}).status_code == 200
        assert logged.get("metrics").status_code == 200
        assert logged.post("login", data={"username": "alice", "password": "wrong"}).status_code in (400, 401)


def _start(tmp: Path, hayao_pt: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The app without running_app's cleanup: this test sends the signals itself."""
    port = attack.app_process.free_port()
    log = (tmp / f"app-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--weights",
                             f"hayao={hayao_pt}", "--offline", "--device", "cpu"], cwd=tmp, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **env})
    url = f"http://127.0.0.1:{port}/"
    attack.app_process._wait_until_ready(proc, url, Path(log.name), 120)
    return proc, url


def test_5_sigterm_and_a_crash_leave_nothing_on_disk(hayao_pt: Path, tmp_path: Path) -> None:
    """Default setup (no GRADIO_TEMP_DIR): SIGTERM removes uploads and results; a killed app's folders go at the
    next start, and nothing without our prefixes is touched."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp), "GRADIO_TEMP_DIR": ""}  # empty: the app picks its own upload folder
    proc, url = _start(tmp_path, hayao_pt, env)
    try:
        _honest(attack.Raw(url))
        ours = sorted(p.name.split("-")[1] for p in tmp.glob("animegan-*"))
        assert ours == ["results", "uploads"], list(tmp.iterdir())
        assert any(p.is_file() for p in tmp.glob("animegan-uploads-*/**/*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp.glob("animegan-*")), list(tmp.rglob("*"))

    proc, url = _start(tmp_path, hayao_pt, env)
    _honest(attack.Raw(url))
    proc.kill()  # a crash: nothing runs at exit
    proc.wait()
    left = sorted(tmp.glob("animegan-*"))
    assert len(left) == 2
    (tmp / "someone-elses").mkdir()
    proc, url = _start(tmp_path, hayao_pt, env)
    try:
        assert not any(p.exists() for p in left)
        assert (tmp / "someone-elses").is_dir()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
