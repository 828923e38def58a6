"""What a many-photos batch costs against the same photos sent one by one, on one real ``python app.py``.

N photos (the shared photos, repeated) go through ``/stylize_batch`` once, and through ``/stylize`` one after
another (the baseline), alternating for ``--rounds`` rounds on the same server (result cache off, so every photo
runs the model). Prints the medians, the ratio and the ZIP's size. Not a test: figures to re-measure.

    python bench/batch_bench.py --photos 10 --side 512 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app_process import running_app

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANIMEGAN_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights" / "hayao-int8-dequant.pt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=10)
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    shared = sorted((SHARED / "photos").glob("*.jpg"))
    photos = [shared[i % len(shared)] for i in range(a.photos)]
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--weights", f"hayao={WEIGHTS}", "--offline", "--device", "cpu", "--result-cache-size", "0",
                "--max-batch", str(a.photos), "--max-queue", str(max(16, a.photos))]
        with running_app(args, Path(tmp)) as app:
            c = Client(app.url, verbose=False, download_files=str(Path(tmp) / "dl"))
            c.predict(handle_file(str(photos[0])), "hayao", a.side, False, api_name="/stylize")  # warm the model
            batch, single, size = [], [], 0
            for _ in range(a.rounds):
                t = time.perf_counter()
                path, _ = c.predict([handle_file(str(f)) for f in photos], "hayao", a.side, api_name="/stylize_batch")
                batch.append(time.perf_counter() - t)
                size = Path(path).stat().st_size
                assert len(zipfile.ZipFile(path).namelist()) == a.photos
                t = time.perf_counter()
                for f in photos:
                    c.predict(handle_file(str(f)), "hayao", a.side, False, api_name="/stylize")
                single.append(time.perf_counter() - t)
    b, s = statistics.median(batch), statistics.median(single)
    print(f"{a.photos} photos at max side {a.side}, {a.rounds} rounds (medians): /stylize_batch {b:.2f} s "
          f"({b / a.photos:.2f} s a photo, ZIP {size / 1e6:.2f} MB); one by one through /stylize {s:.2f} s; "
          f"batch / singles = {b / s:.2f}")


if __name__ == "__main__":
    main()
