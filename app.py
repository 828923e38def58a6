"""AnimeGANv2 web app: flags -> shared registry -> UI -> queue -> launch.

``python app.py`` serves on http://127.0.0.1:7860 (CPU when there is no GPU). ``python app.py --help`` lists the
flags; each has an ANIMEGAN_* environment variable, which is how a Hugging Face Space configures it (Spaces
run this file and use the module-level ``demo``). The UI itself is in ``animegan/ui.py``.

API: ``gradio_client.Client(url).predict(handle_file(photo), "hayao", 1024, False, api_name="/stylize")``
returns ``(png_path, notice)``.
"""
from __future__ import annotations

import logging
import sys

import torch

from animegan import Registry
from animegan.serving import load_config
from animegan.ui import CSS, EXAMPLES_DIR, build_demo

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
log = logging.getLogger("animegan.app")

# Flags only when run as a script; imported (Spaces, `gradio app.py` reload mode) the environment configures it.
config = load_config(sys.argv[1:] if __name__ == "__main__" else [])

threads = config.threads()
if threads:  # CPU: workers x threads = cores, so parallel conversions do not fight over cores
    torch.set_num_threads(threads)

# One registry for every worker and session: each style's model is loaded once and shared.
registry = Registry(weights_dir=config.weights_dir, weights=config.weights, offline=config.offline)

demo = build_demo(config, registry)
# api_open=False: a direct POST to /gradio_api/run/stylize must not skip the queue (Gradio opens it off Spaces).
demo.queue(max_size=config.max_queue, default_concurrency_limit=config.workers(), api_open=False)

if config.cache:  # redis is an extra: imported only when asked for; the replicas open their own connection
    from animegan.redis_cache import RedisCache

    demo.animegan.cache = RedisCache(config.cache)
if config.backend == "ray":  # conversions go to Ray Serve replicas; the UI, queue and messages stay the same
    try:
        from animegan.ray_backend import RayBackend
    except ImportError as exc:
        sys.exit(f"error: {exc}")
    demo.animegan.convert = RayBackend(config)
    demo.animegan.cache = None  # each replica holds the cache (Redis is shared by all of them)

launch_extra: dict = {}
if config.metrics:  # prometheus_client is an extra: imported only when asked for
    from animegan.metrics import Metrics

    demo.animegan.metrics = Metrics(queue_length=lambda: len(demo._queue))
    demo.animegan.metrics.cache_backend = "redis" if config.cache else ("memory" if config.cache_size else None)
    if hasattr(demo.animegan.cache, "error_counts"):  # Redis failures (requests that ran without the cache)
        demo.animegan.metrics.add_cache_errors(demo.animegan.cache.error_counts)
    launch_extra["app_kwargs"] = demo.animegan.metrics.app_kwargs()

log.info("device %s, %d conversion(s) at once, %s torch thread(s) each, queue of %d; styles: %s",
         config.device, config.workers(), threads or "default", config.max_queue,
         ", ".join(f"{k} ({'ok' if ok else 'unavailable'})" for k, (ok, _) in registry.availability().items()))

if __name__ == "__main__":
    from animegan.ports import busy_port_message, port_in_use

    if port_in_use(config.host, config.port):  # one readable line and exit 2 (a usage error), not Gradio's traceback
        print(f"error: {busy_port_message(config.port)}", file=sys.stderr)
        sys.exit(2)
    try:
        demo.launch(**config.launch_kwargs(), **launch_extra, allowed_paths=[str(EXAMPLES_DIR)], css=CSS,
                    footer_links=["api", "gradio"])
    except OSError:
        if not port_in_use(config.host, config.port):  # taken between the check and the launch, or another error
            raise
        print(f"error: {busy_port_message(config.port)}", file=sys.stderr)
        sys.exit(2)
