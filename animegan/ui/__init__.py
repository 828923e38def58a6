"""The Gradio app, one module per concern: ``state`` (what a demo shares), ``inputs`` (what requests send, read),
``texts`` (every message), ``photo_tab``, ``video_tab`` and ``webcam_tab`` (each tab; none imports another),
``page`` (the whole page). Every touch of Gradio's internals is in :mod:`animegan.gradio_internals`."""
from .page import CSS, build_demo
from .state import EXAMPLES_DIR, gradio_upload_folder

__all__ = ["CSS", "EXAMPLES_DIR", "build_demo", "gradio_upload_folder"]
