"""The cluster deployment of docs/deployment.md, for real: ``ray start --head``, ``serve run deploy/serve.yaml``, then
``python app.py --backend ray --ray-address HEAD`` uses that deployment instead of deploying its own.

The config is the committed one with only what a CPU-only machine must change (device, weights, no GPU,
no Redis). One small local cluster for the module; it is stopped with the test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.serve")
yaml = pytest.importorskip("yaml")  # a dependency of ray
from conftest import torch_threads
from gradio_client import handle_file
from harness import REPO, client, free_port, running_app

from animegan import stylize

pytestmark = pytest.mark.slow

# Ray clusters authenticate with a token (~/.ray/auth_token, made by the first Ray started on the machine); a
# client that joins one must be told to send it (with Ray 2.60 it is not inferred from the file alone).
RAY_ENV = {"RAY_DISABLE_USAGE_STATS": "1", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def cpu_config(hayao_pt: Path) -> dict:
    """deploy/serve.yaml, changed only where this machine differs from the GPU node it describes."""
    config = yaml.safe_load((REPO / "deploy" / "serve.yaml").read_text())
    app = config["applications"][0]
    app["args"]["settings"].update(device="cpu", weights_dir=None, weights={"hayao": str(hayao_pt)}, cache=None)
    deployment = app["deployments"][0]
    deployment["ray_actor_options"]["num_gpus"] = 0
    deployment["autoscaling_config"].update(min_replicas=1, max_replicas=1)
    return config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, one_ray_at_a_time: None) -> Iterator[str]:
    """A one-node Ray cluster (``ray start --head --block``, so stopping it stops everything it started)."""
    tmp = tmp_path_factory.mktemp("ray-cluster")
    port = free_port()
    # Ray 2.60 drains a node on SIGTERM for up to 30 s while actors (the Serve replica) live: nothing to drain here
    env = {**os.environ, **RAY_ENV, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    log = (tmp / "ray.log").open("wb")
    head = subprocess.Popen(["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r}); ray.shutdown()"],
                             env=env, capture_output=True, timeout=120, check=False).returncode != 0:
            assert head.poll() is None, (tmp / "ray.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(1)
        yield address
    finally:
        # SIGTERM to `ray start` alone: it stops what it started (its node drain is off: nothing is in flight).
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        # `ray start` records the cluster for later bare ray.init() calls on this machine; ours is gone
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def test_the_documented_serve_config_runs_and_the_app_uses_it(cluster: str, hayao_pt: Path, registry,
                                                               small_photo: Path, tmp_path: Path) -> None:  
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(cpu_config(hayao_pt)))
    env = {**os.environ, **RAY_ENV, "ANIMEGAN_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(["serve", "run", str(config), "--address", cluster, "--non-blocking"], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    app_env = {k: v for k, v in RAY_ENV.items() if k != "RAY_AUTH_MODE"}  # the app finds the token by itself
    with running_app(tmp_path / "app", "--backend", "ray", "--ray-address", cluster, "--offline", "--device", "cpu",
                     env=app_env) as url:
        png, note = client(url, tmp_path).predict(handle_file(str(small_photo)), "hayao", 0, False, api_name="/stylize")
        log = "".join(p.read_text() for p in (tmp_path / "app").glob("server-*.log"))
    # the app found the deployment that `serve run` made, and did not deploy replicas of its own
    assert "using the deployed application 'animegan'" in log, log[-3000:]
    assert "replica(s) of Stylizer" not in log
    with torch_threads(1):  # as the replica runs (1 CPU): in bf16 another thread count rounds differently
        local = np.asarray(stylize(str(small_photo), "hayao", registry=registry, device="cpu", max_side=0).image)
    remote = np.asarray(Image.open(png).convert("RGB"))
    assert remote.shape == local.shape and note.startswith("Hayao style"), note
    # the same engine; a replica's thread count (1 CPU: 1 thread) may only change float rounding
    assert np.abs(remote.astype(int) - local).max() <= 2

