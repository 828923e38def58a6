"""A busy port is one readable line and exit status 2 (issue 14, item 5): a real socket held open on 127.0.0.1."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from animegan.ports import busy_port_message, port_in_use

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port something is listening on, for as long as the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_port_in_use(held_port: int) -> None:
    assert port_in_use("127.0.0.1", held_port)
    assert port_in_use("0.0.0.0", held_port)  # the app on every interface would clash with it too
    assert port_in_use("localhost", held_port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert not port_in_use("127.0.0.1", free)
    assert not port_in_use("no-such-host.invalid", free)  # not "busy": the server reports a bad host itself


def test_a_closed_connection_does_not_make_the_port_busy() -> None:
    """A previous app's closed connections leave TIME_WAIT behind; its server (uvicorn) set SO_REUSEADDR, as the
    next one will, so the port is free for it and the check must say so."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    assert not port_in_use("127.0.0.1", port)


def test_app_on_a_busy_port_says_so_and_exits_2(held_port: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMEGAN_", "GRADIO_"))}
    env.update(ANIMEGAN_OFFLINE="1", ANIMEGAN_CACHE_DIR=str(tmp_path / "cache"), GRADIO_ANALYTICS_ENABLED="False")
    r = subprocess.run([sys.executable, str(REPO / "app.py"), "--port", str(held_port)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().endswith(f"error: {busy_port_message(held_port)}")
    assert f"port {held_port} is in use; pass --port or set ANIMEGAN_PORT" in r.stderr
    assert "Traceback" not in r.stderr and "GRADIO_SERVER_PORT" not in r.stderr
    env["ANIMEGAN_PORT"] = str(held_port)  # the variable, not the flag: the same answer
    r = subprocess.run([sys.executable, str(REPO / "app.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=180, check=False)
    assert r.returncode == 2 and busy_port_message(held_port) in r.stderr
