"""AnimeGANv2 web app: flags -> shared registry -> UI -> queue -> launch.

``python app.py`` serves on http://127.0.0.1:7860 (CPU when there is no GPU). ``python app.py --help`` lists the
flags; each has an ANIMEGAN_* environment variable, which is how a Hugging Face Space configures it (Spaces
run this file and use the module-level ``demo``). The UI itself is in ``animegan/ui/``.

API: ``gradio_client.Client(url).predict(handle_file(photo), "hayao", 1024, False, api_name="/stylize")``
returns ``(png_path, notice)``.
"""
from __future__ import annotations

import atexit
import logging
import sys

from animegan import temp_files

# Before Gradio is imported (it reads GRADIO_TEMP_DIR then): uploads go to a folder of this process's own,
# removed at exit; SIGTERM exits as cleanly as Ctrl-C; folders of earlier app processes that crashed are removed.
temp_files.use_private_upload_dir()
temp_files.remove_orphans()
temp_files.stop_cleanly_on_sigterm()

import torch

from animegan import Registry
from animegan.engine import LocalConverter
from animegan.gradio_internals import has_event, recorded_files, waiting_count
from animegan.memory import parse_bytes
from animegan.request_guard import Limits, RequestGuard
from animegan.serving import load_config, open_result_cache
from animegan.ui import CSS, EXAMPLES_DIR, build_demo, gradio_upload_folder

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
log = logging.getLogger("animegan.app")
SESSION_CAPACITY = 1000  # sessions whose state Gradio keeps (its default is 10000)

# Flags only when run as a script; imported (Spaces, `gradio app.py` reload mode) the environment configures it.
config = load_config(sys.argv[1:] if __name__ == "__main__" else [])

threads = config.threads()
if threads:  # CPU: workers x threads = cores, so parallel conversions do not fight over cores
    torch.set_num_threads(threads)

# One registry for every worker and session: each style's model is loaded once and shared.
registry = Registry(weights_dir=config.weights_dir, weights=config.weights, offline=config.offline,
                    origin=config.weights_origin)

if config.preload and config.backend == "local":  # a Space's first visitor must not wait for a download
    for style_id, outcome in registry.preload(device=config.device).items():
        if isinstance(outcome, Exception):
            log.warning("preload: %s is unavailable: %s", style_id, outcome)
        else:
            log.info("preload: %s ready (%s, %s) from %s", style_id, outcome.key.device, outcome.key.precision,
                     outcome.weights_source)

# The backend and the result cache (Redis, shared by every app process and replica, or this process's own):
# each optional part is imported only when asked for.
cache = open_result_cache(config.result_cache, config.result_cache_size)
if config.backend == "ray":  # conversions go to Ray Serve replicas; the UI, queue and messages stay the same
    try:
        from animegan.ray_backend import RayBackend
    except ImportError as exc:
        sys.exit(f"error: {exc}")
    converter = RayBackend(config)
    app_cache = None  # each replica holds the cache (Redis is shared by all of them)
else:
    converter = LocalConverter(registry, cache)
    app_cache = cache

metrics = None
if config.metrics:  # prometheus_client is an extra: imported only when asked for
    from animegan.metrics import Metrics

    # The queue exists once the demo does (registering the metrics already reads every gauge once).
    metrics = Metrics(queue_length=lambda: waiting_count(demo) if "demo" in globals() else None,
                      styles=[s.id for s in registry.styles()])
    metrics.cache_backend = "redis" if config.result_cache else ("memory" if config.result_cache_size else None)
    if config.result_cache:  # Redis failures (requests that ran without the cache)
        metrics.add_cache_errors(cache.error_counts)

demo = build_demo(config, registry, converter=converter, cache=app_cache, metrics=metrics)
# api_open=False: a direct POST to /gradio_api/run/stylize must not skip the queue (Gradio opens it off Spaces).
demo.queue(max_size=config.max_queue, default_concurrency_limit=config.workers(), api_open=False)

# The guard in front of Gradio (outermost middleware): body limits, no server-side fetches, login on every
# API route, and the count of open result streams the UI uses to stop work nobody waits for.
from starlette.middleware import Middleware

app_kwargs = metrics.app_kwargs() if metrics is not None else {"routes": [], "middleware": []}
app_kwargs["middleware"].insert(0, Middleware(
    RequestGuard, limits=Limits.for_upload_size(parse_bytes(config.max_file_size)),
    listeners=demo.animegan.listeners, on_refusal=metrics.refused if metrics is not None else None,
    known_fn=lambda fn_index: has_event(demo, fn_index),
    slots=demo.animegan_webcam.slots() if demo.animegan_webcam is not None else None))
launch_extra: dict = {"app_kwargs": app_kwargs}

# At exit, even in a folder the operator chose (GRADIO_TEMP_DIR): every upload this process received and every copy
# Gradio made of results and inputs. Gradio's own shutdown would delete the copies, but after an MCP call it did not
# run before the process exited; see animegan/gradio_internals.py.
atexit.register(lambda: temp_files.remove_files(recorded_files(demo)))
# Partial uploads (a client that stopped mid-way) are removed once they stop growing; the MCP server's copies of its
# inputs once older than --temp-max-age (Gradio's delete_cache ages the rest).
temp_files.TempSweeper(gradio_upload_folder(), stale_s=min(temp_files.PARTIAL_STALE_S, config.temp_max_age),
                       every_s=min(temp_files.SWEEP_EVERY_S, max(1.0, config.temp_max_age / 2)),
                       aged=[p for p in [demo.animegan.mcp_dir] if p is not None], max_age_s=config.temp_max_age).start()

log.info("device %s, %d conversion(s) at once, %s torch thread(s) each, queue of %d; styles: %s",
         config.device, config.workers(), threads or "default", config.max_queue,
         ", ".join(f"{k} ({'ok' if ok else 'unavailable'})" for k, (ok, _) in registry.availability().items()))

if __name__ == "__main__":
    from animegan.ports import busy_port_message, port_in_use

    if port_in_use(config.host, config.port):  # one readable line and exit 2 (a usage error), not Gradio's traceback
        print(f"error: {busy_port_message(config.port)}", file=sys.stderr)
        sys.exit(2)
    try:
        # state_session_capacity: Gradio keeps each session's last inputs; with the request-body limit that
        # bounds the memory every session together can hold.
        demo.launch(**config.launch_kwargs(), **launch_extra, allowed_paths=[str(EXAMPLES_DIR)], css=CSS,
                    footer_links=["api", "gradio"], state_session_capacity=SESSION_CAPACITY)
    except OSError:
        if not port_in_use(config.host, config.port):  # taken between the check and the launch, or another error
            raise
        print(f"error: {busy_port_message(config.port)}", file=sys.stderr)
        sys.exit(2)
