"""``--mcp``: Gradio's MCP server on the app's port, driven by the official ``mcp`` client over streamable HTTP.

The stylize tool is listed with a description of each argument (from the handler's docstring), and a call with
a real photo (sent as a data: URL, as assistants do) returns a stylised PNG of the photo's size and the notice,
with progress notifications on the way.
"""
from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mcp")
from harness import running_app
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def _list_and_call(url: str, photo: Path) -> tuple[list, object]:
    data_url = "data:image/jpeg;base64," + base64.b64encode(photo.read_bytes()).decode()
    async with streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        updates: list[str | None] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            updates.append(message)

        # With a progress token Gradio 6.31 returns each output as its own content item; without one it sends
        # the (file, notice) pair as a single text item (its non-progress path wraps the outputs in a list).
        result = await session.call_tool("stylize", {"image": data_url, "style": "hayao", "max_side": 0,
                                                     "keep_brightness": False}, progress_callback=on_progress)
        assert updates, "no progress notifications"
        return tools, result


def test_mcp_lists_the_stylize_tool_and_converts_a_photo(hayao_pt: Path, small_photo: Path,
                                                         tmp_path: Path) -> None:
    with running_app(tmp_path / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu",
                     "--mcp") as url:
        tools, result = asyncio.run(_list_and_call(url, small_photo))

    tool = next((t for t in tools if t.name == "stylize"), None)
    assert tool is not None, [t.name for t in tools]
    props = tool.inputSchema["properties"]
    assert set(props) == {"image", "style", "max_side", "keep_brightness", "framing", "background", "keep_color",
                          "side_by_side"}
    assert "photo's own colours" in props["keep_color"]["description"]
    assert "twice as wide" in props["side_by_side"]["description"]
    assert "paste" in props["framing"]["description"] and "keep" in props["background"]["description"]
    assert "hayao" in props["style"]["description"] and "native size" in props["max_side"]["description"]
    assert "anime" in tool.description

    assert not result.isError, result.content
    images = [c for c in result.content if c.type == "image"]
    texts = [c.text for c in result.content if c.type == "text"]
    assert len(images) == 1 and images[0].mimeType == "image/png", texts
    out = Image.open(io.BytesIO(base64.b64decode(images[0].data))).convert("RGB")
    src = Image.open(small_photo).convert("RGB")
    assert out.size == src.size
    mad = float(np.abs(np.asarray(out, np.float32) - np.asarray(src, np.float32)).mean())
    assert mad > 12, f"the result is too close to the photo (mean abs diff {mad:.1f}): not stylised"
    assert any(t.startswith("Hayao style") for t in texts), texts


def test_no_mcp_server_without_the_flag(hayao_pt: Path, tmp_path: Path) -> None:
    import httpx

    with running_app(tmp_path / "app", "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu") as url:
        response = httpx.get(f"{url}gradio_api/mcp/schema", timeout=10)
    assert response.status_code == 404
