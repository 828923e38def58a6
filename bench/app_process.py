"""Start the real ``python app.py`` on a free 127.0.0.1 port for a bench script, and stop it again.

One launcher for every bench script, so that they all wait for the app the same way (an HTTP 200 from
``gradio_api/info``, not merely an open port), fail the same way (a SystemExit naming the log) and never leave
an app running behind them.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 300.0  # seconds: a cold start on a busy 2-core machine (or with Ray) can take minutes
STOP_TIMEOUT = 60.0      # seconds between terminate and kill


class RunningApp(NamedTuple):
    proc: subprocess.Popen[bytes]
    url: str   # "http://127.0.0.1:PORT/"
    log: Path  # the app's stdout and stderr


def free_port() -> int:
    """A loopback port nobody listens on right now, so that several apps (and tests) can run side by side."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(args: Sequence[str], tmp: Path, env: Mapping[str, str] | None = None,
                startup_timeout: float = STARTUP_TIMEOUT) -> Iterator[RunningApp]:
    """``python app.py --port PORT ARGS`` in ``tmp``, yielded once it answers; terminated (killed if stuck) on exit.

    The log goes to ``tmp/server-PORT.log`` (one per app, as a script may run several at once in one folder);
    ``env`` is added to this process's environment, with analytics and Ray usage stats off. If the app exits or
    does not answer within ``startup_timeout`` seconds, SystemExit names the log, so the bench stops with the cause.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "RAY_DISABLE_USAGE_STATS": "1", **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), *args],
                                cwd=tmp, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until_ready(proc, url, log, startup_timeout)
            yield RunningApp(proc, url, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}gradio_api/info", timeout=2).status_code in (200, 401):  # 401: it asks for --auth
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"app exited with code {proc.returncode} before answering; log {log}:\n{tail}")
        if time.monotonic() > deadline:
            raise SystemExit(f"app did not answer {url}gradio_api/info within {timeout:.0f} s; see {log}")
        time.sleep(0.5)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of latencies, linearly interpolated: one definition for every bench's p50/p95."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
