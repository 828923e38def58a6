"""The UI's shape (issue 24): state lives on its demo (no registry of apps), tabs never import each other, and no
module takes a private name from another."""
from __future__ import annotations

import ast
import gc
import sys
import types
from collections import deque
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from conftest import REPO

UI = REPO / "animegan" / "ui"
TABS = {"photo_tab", "video_tab", "webcam_tab"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module as written, names taken) for each ``import`` / ``from ... import`` of a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found.append(("." * node.level + (node.module or ""), [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def test_tabs_never_import_each_other_and_no_private_name_crosses_a_module() -> None:
    files = sorted(UI.glob("*.py")) + [REPO / "app.py"]
    assert {f.stem for f in files} >= TABS | {"state", "inputs", "texts", "page"}
    for path in files:
        for module, names in _imports(path):
            last = module.rsplit(".", 1)[-1]
            if path.stem in TABS:
                assert last not in TABS - {path.stem} and not (module == "." and set(names) & TABS), \
                    f"{path.name} imports another tab: {module} {names}"
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{path.name} takes private names from {module}: {private}"


def _ours(obj: object) -> bool:
    """Whether the search below walks into ``obj``: containers, and what the package itself defines."""
    if isinstance(obj, (dict, list, tuple, set, frozenset, deque, types.CellType)):
        return True
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    owner = obj.__module__ if isinstance(obj, (type, types.FunctionType)) else type(obj).__module__
    return str(owner).split(".")[0] == "animegan"


def _held_by_a_module(target_id: int) -> str | None:
    """The path by which an ``animegan`` module reaches the object with ``target_id``, if one does. What other
    packages define is not entered: Gradio and FastAPI keep every Blocks they built (FastAPI caches route
    functions), which is theirs to keep."""
    roots = [(vars(m), name) for name, m in list(sys.modules.items())
             if m is not None and (name == "animegan" or name.startswith("animegan."))]
    queue, seen = deque(roots), {id(m) for m, _ in roots}
    while queue:
        obj, path = queue.popleft()
        for ref in gc.get_referents(obj):
            if id(ref) == target_id:
                return path
            if id(ref) in seen or isinstance(ref, types.ModuleType) or not _ours(ref):
                continue
            seen.add(id(ref))
            queue.append((ref, f"{path} -> {type(ref).__name__}"))
    return None


def test_no_module_keeps_an_app(registry) -> None:
    """State lives on its demo: no module of the package reaches a demo's app (``ui._APPS`` kept every one)."""
    from animegan.serving import ServeConfig
    from animegan.ui import build_demo

    first, second = (build_demo(ServeConfig(device="cpu", offline=True), registry) for _ in range(2))
    assert first.animegan is not second.animegan
    assert first.animegan_video.app is first.animegan and second.animegan_webcam.app is second.animegan
    for demo in (first, second):
        for held in (demo, demo.animegan, demo.animegan_photo, demo.animegan_video, demo.animegan_webcam):
            path = _held_by_a_module(id(held))
            assert path is None, f"{type(held).__name__} is held by {path}"
