"""A weights mirror on 127.0.0.1 serving the stand-in Hayao checkpoint, for demos of ``download`` without internet.

The stand-in is not the upstream checkpoint, so its git SHA-1s differ from those pinned in ``animegan/styles/*.toml`` and a
download of it is rightly refused. This writes a copy of the style files with the stand-in's sizes and hashes
into ``--styles-out`` and serves the stand-in under every style's upstream file names:

    python scripts/standin_mirror.py --shared ../shared --styles-out /tmp/standin-styles --port 8765 &
    ANIMEGAN_STYLES_DIR=/tmp/standin-styles ANIMEGAN_WEIGHTS_MIRROR=http://127.0.0.1:8765 \\
        python -m animegan download --to weights
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = {"index": ".index", "data": ".data-00000-of-00001"}


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_styles(stand_in: dict[str, bytes], dest: Path) -> list[str]:
    """The repository's style files with the stand-in's sizes and hashes; returns the upstream prefixes of the TF
    checkpoints and the upstream names of the single ``.pt`` files (portrait styles; served ``stand_in["pt"]``)."""
    dest.mkdir(parents=True, exist_ok=True)
    prefixes = []
    for toml in sorted((REPO / "animegan" / "styles").glob("*.toml")):
        text = toml.read_text()
        pt = re.search(r'^name = "([^"]+\.pt)"$', text, re.MULTILINE)
        if pt is not None:  # one state dict, no size: only the hash changes
            prefixes.append(pt.group(1))
            text = re.sub(r'(\ngit_sha1 = ")[0-9a-f]{40}', rf"\g<1>{git_blob_sha1(stand_in['pt'])}", text)
            (dest / toml.name).write_text(text)
            continue
        prefixes.append(re.search(r'^prefix = "([^"]+)"', text, re.MULTILINE).group(1))
        for kind, suffix in SUFFIXES.items():
            text, n = re.subn(rf'(name = "[^"]+{re.escape(suffix)}"\nsize = )\d+(\ngit_sha1 = ")[0-9a-f]{{40}}',
                              rf"\g<1>{len(stand_in[kind])}\g<2>{git_blob_sha1(stand_in[kind])}", text)
            if n != 1:
                raise SystemExit(f"{toml}: no {suffix} entry to rewrite")
        (dest / toml.name).write_text(text)
    return prefixes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, required=True, help="the shared test material folder")
    p.add_argument("--styles-out", type=Path, required=True, help="where to write the stand-in style files")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    args = p.parse_args()
    prefix = args.shared / "weights" / "tf-ckpt" / "Hayao-int8-dequant.ckpt"
    stand_in = {kind: Path(f"{prefix}{suffix}").read_bytes() for kind, suffix in SUFFIXES.items()}
    stand_in["pt"] = (args.shared / "weights" / "hayao-int8-dequant.pt").read_bytes()
    root = args.styles_out / "mirror"
    root.mkdir(parents=True, exist_ok=True)
    for upstream in write_styles(stand_in, args.styles_out):
        if upstream.endswith(".pt"):
            (root / upstream).write_bytes(stand_in["pt"])
            continue
        for kind, suffix in SUFFIXES.items():
            (root / f"{upstream}{suffix}").write_bytes(stand_in[kind])
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    with ThreadingHTTPServer(("127.0.0.1", args.port), handler) as httpd:
        print(f"ANIMEGAN_STYLES_DIR={args.styles_out} ANIMEGAN_WEIGHTS_MIRROR=http://127.0.0.1:{httpd.server_address[1]}",
              flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
