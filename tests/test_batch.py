"""Many photos at once (issue 27): ``/stylize_batch`` through gradio_client and raw HTTP, its limits, and the page.

One app for the file (real weights, real photos at max side 128, no result cache so that every photo really runs),
with ``--max-batch 3`` and ``--max-queue 3``: a batch of 3 fits an idle queue, a fourth photo is over the limit.
"""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import load_bench
from gradio_client import handle_file
from gradio_client.exceptions import AppError, ValidationError
from harness import assert_stylised, chromium, client, running_app, stats, wait_until
from PIL import Image

attack = load_bench("attack")

LIMIT = 3
SIDE = 128
ZIP_NAME = "photos_hayao.zip"


class App:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp

    def results(self) -> list[Path]:
        """Every file in the app's private results folders (its TMPDIR is ours)."""
        return [p for p in (self.tmp / "tmp").glob("animegan-results-*/**/*") if p.is_file()]

    def uploads(self) -> list[Path]:
        return [p for p in (self.tmp / "gradio").rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def app(hayao_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp = tmp_path_factory.mktemp("batch")
    (tmp / "tmp").mkdir()
    with running_app(tmp, "--weights", f"hayao={hayao_pt}", "--offline", "--device", "cpu", "--max-batch", str(LIMIT),
                     "--max-queue", "3", "--concurrency", "1", "--result-cache-size", "0",
                     env={"TMPDIR": str(tmp / "tmp"), "ANIMEGAN_CLIENT_GRACE": "1"}) as url:
        yield App(url, tmp)


@pytest.fixture(scope="module")
def files(photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared photos, another photo with one of their stems (a PNG in another folder), a text file named .png
    and a JPEG cut short."""
    tmp = tmp_path_factory.mktemp("batch-files")
    (tmp / "other").mkdir()
    twin = tmp / "other" / "railway_crossing.png"
    im = Image.open(photos["kyoto_street_kimono"]).convert("RGB")
    im.thumbnail((300, 300))
    im.save(twin)
    text = tmp / "notes.png"
    text.write_text("these are my notes, not a photo\n")
    cut = tmp / "cut.jpg"
    cut.write_bytes(photos["cars_bridge_forest"].read_bytes()[:20_000])
    return {**photos, "twin": twin, "text": text, "cut": cut}


def _entries(path: str | Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _pixels(data: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        return np.asarray(im.convert("RGBA"))


def test_the_zip_holds_what_stylize_gives_for_each_photo(app: App, files: dict[str, Path], tmp_path: Path) -> None:
    c = client(app.url, tmp_path)
    given = [files["railway_crossing"], files["cars_bridge_forest"], files["twin"]]
    before = stats(app.url)
    path, notice = c.predict([handle_file(str(p)) for p in given], "hayao", SIDE, api_name="/stylize_batch")
    assert Path(path).name == ZIP_NAME
    assert notice.startswith("Hayao style: 3 of 3 photos converted"), notice
    entries = _entries(path)
    # Named as the command line names a folder's results: the repeated stem gets _2, nothing is overwritten.
    names = ["railway_crossing_hayao.png", "cars_bridge_forest_hayao.png", "railway_crossing_hayao_2.png"]
    assert list(entries) == names
    assert stats(app.url)["succeeded"] == before["succeeded"] + 3  # each photo counts as one conversion
    for photo, name in zip(given, names):
        png, _ = c.predict(handle_file(str(photo)), "hayao", SIDE, False, api_name="/stylize")
        batch = _pixels(entries[name])
        assert max(batch.shape[:2]) == SIDE
        assert np.array_equal(batch, _pixels(Path(png))), name  # the model ran again: no result cache here
        assert_stylised(Path(png), photo, (batch.shape[1], batch.shape[0]))


def test_side_by_side_reaches_every_photo_of_a_batch(app: App, files: dict[str, Path], tmp_path: Path) -> None:
    """The tab's Side by side applies to "Convert all" too: each entry is the photo beside its plain result."""
    c = client(app.url, tmp_path)
    photo = files["cars_bridge_forest"]
    path, _ = c.predict([handle_file(str(photo))], "hayao", SIDE, side_by_side=True, api_name="/stylize_batch")
    entries = _entries(path)
    assert list(entries) == ["cars_bridge_forest_hayao_side_by_side.png"]
    pair = _pixels(entries["cars_bridge_forest_hayao_side_by_side.png"])
    plain, _ = c.predict(handle_file(str(photo)), "hayao", SIDE, False, api_name="/stylize")
    right = _pixels(Path(plain))
    assert pair.shape[1] == 2 * right.shape[1] and pair.shape[0] == right.shape[0]
    assert np.array_equal(pair[:, right.shape[1]:], right)


def test_a_bad_file_is_named_and_deleted_while_the_others_convert(app: App, files: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    c = client(app.url, tmp_path)
    given = [files["text"], files["railway_crossing"], files["cut"]]
    path, notice = c.predict([handle_file(str(p)) for p in given], "hayao", SIDE, api_name="/stylize_batch")
    assert list(_entries(path)) == ["railway_crossing_hayao.png"]
    assert notice.startswith("Hayao style: 1 of 3 photos converted"), notice
    assert "Not converted: photo 1 (notes.png): This photo can't be used" in notice
    assert "Not converted: photo 3 (cut.jpg): This photo can't be used" in notice
    assert str(app.tmp) not in notice and "gradio" not in notice  # the name the user gave, never a server path
    # Unusable whatever the settings: deleted like any refused upload (the good photo's upload stays).
    left = {p.name for p in app.uploads()}
    assert "railway_crossing.jpg" in left and not {"notes.png", "cut.jpg"} & left, left


def test_a_batch_nobody_could_convert_fails_and_leaves_no_zip(app: App, files: dict[str, Path],
                                                              tmp_path: Path) -> None:
    zips = sorted(p for p in app.results() if p.suffix in (".zip", ".part"))
    with pytest.raises(AppError, match="None of the 2 photos could be converted.*notes.png.*cut.jpg"):
        client(app.url, tmp_path).predict([handle_file(str(files["text"])), handle_file(str(files["cut"]))],
                                          "hayao", SIDE, api_name="/stylize_batch")
    assert sorted(p for p in app.results() if p.suffix in (".zip", ".part")) == zips


def test_a_batch_nobody_waits_for_stops_and_leaves_no_zip(app: App, photos: dict[str, Path]) -> None:
    """A raw client joins a batch of three native-size photos, listens until the first photo starts, then goes: the
    batch stops between tiles or photos, and neither a ZIP nor the photos after it are made."""
    raw = attack.Raw(app.url)
    data = photos["kyoto_street_kimono"].read_bytes()
    entries = [{"path": raw.upload(data, f"k{i}.jpg"), "meta": {"_type": "gradio.FileData"}} for i in range(3)]
    zips = sorted(p for p in app.results() if p.suffix in (".zip", ".part"))
    before = stats(app.url)
    status, _, session = raw.join(raw.fn_index("stylize_batch"), attack.batch_data(entries, side=0))
    assert status == 200
    with raw.http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if '"process_starts"' in line:
                break  # the client goes away while the first photo runs
    assert wait_until(lambda: stats(app.url)["running"] == 0, timeout=60)
    after = stats(app.url)
    assert after["stopped"] == before["stopped"] + 1 and after["succeeded"] <= before["succeeded"] + 1, after
    assert sorted(p for p in app.results() if p.suffix in (".zip", ".part")) == zips


def test_a_batch_over_the_limit_is_refused_before_it_waits(app: App, files: dict[str, Path], tmp_path: Path) -> None:
    c = client(app.url, tmp_path)
    before = stats(app.url)
    four = [handle_file(str(files[k])) for k in ("railway_crossing", "cars_bridge_forest", "twin", "kyoto_street_kimono")]
    with pytest.raises(ValidationError, match=f"A batch holds at most {LIMIT} photos on this server .--max-batch.; "
                                              "this one has 4"):
        c.predict(four, "hayao", SIDE, api_name="/stylize_batch")
    after = stats(app.url)
    assert after["started"] == before["started"] and after["queued"] == 0  # nothing converted, nothing waited


def test_the_queue_counts_a_batch_as_its_photos(app: App, files: dict[str, Path], tmp_path: Path) -> None:
    """One photo running at its native 1024 px, one waiting: the queue (3 places) has room for 2 more requests, so
    a batch of 3 is refused at once and a batch of 2 is let in."""
    clients = [client(app.url, tmp_path / f"c{i}") for i in range(3)]
    blocker = clients[0].submit(handle_file(str(files["kyoto_street_kimono"])), "hayao", 0, False,
                                api_name="/stylize")
    assert wait_until(lambda: stats(app.url)["running"] == 1, timeout=30)
    waiting = clients[1].submit(handle_file(str(files["twin"])), "hayao", SIDE, False, api_name="/stylize")
    assert wait_until(lambda: stats(app.url)["queued"] == 1, timeout=30)
    three = [handle_file(str(files[k])) for k in ("railway_crossing", "cars_bridge_forest", "twin")]
    if stats(app.url)["running"] == 1:  # the blocker still runs (it takes seconds): the queue holds one request
        with pytest.raises(ValidationError, match="The queue has room for 2 more photos right now and this batch "
                                                  "has 3"):
            clients[2].predict(three, "hayao", SIDE, api_name="/stylize_batch")
    admitted = clients[2].submit(three[:2], "hayao", SIDE, api_name="/stylize_batch")
    assert Path(blocker.result(timeout=120)[0]).is_file() and Path(waiting.result(timeout=120)[0]).is_file()
    assert list(_entries(admitted.result(timeout=120)[0])) == ["railway_crossing_hayao.png",
                                                               "cars_bridge_forest_hayao.png"]


def test_hostile_bodies_get_readable_answers(app: App, small_photo: Path) -> None:
    raw = attack.Raw(app.url)
    photo = {"path": raw.upload(small_photo.read_bytes(), "railway.jpg"), "meta": {"_type": "gradio.FileData"}}
    refused = attack.REFUSED
    cases = [
        ("files is not a list", attack.batch_data("/etc/passwd", side=SIDE), 400, "/stylize_batch takes a list of"),
        ("a dict for the list", attack.batch_data({"path": 1}, side=SIDE), 400, "/stylize_batch takes a list of"),
        ("a server path as an entry", attack.batch_data([photo, {"path": "/etc/passwd", "meta": photo["meta"]}]),
         400, refused),
        ("a bare server path as an entry", attack.batch_data([photo, "/etc/passwd"], side=SIDE), 400,
         "/stylize_batch takes a list of"),
        ("too many entries", attack.batch_data([photo] * 40, side=SIDE), 422, f"at most {LIMIT} photos"),
    ]
    for name, data, status, text in cases:
        got, answer = raw.call_route("stylize_batch", data)
        assert got == status and text in str(answer) and "root:" not in str(answer), (name, got, answer)
    got, answer = raw.call_route("stylize_batch", {"not": "a list"})  # Gradio's own check of the body's shape
    assert got == 422 and "valid list" in str(answer), answer
    got, answer = raw.call_route("stylize_batch", attack.batch_data([photo], side="big"))
    assert got == 200 and answer["event"] == "error" and "Max side must be a number" in str(answer["data"]), answer
    got, answer = raw.call_route("stylize_batch", attack.batch_data([photo], style="cubism", side=SIDE))
    assert got == 200 and answer["event"] == "error" and "unknown style 'cubism'" in str(answer["data"]), answer
    got, answer = raw.call_route("stylize_batch", attack.batch_data([photo], side=SIDE))  # control: the same route works
    assert got == 200 and answer["event"] == "complete" and answer["data"][0]["orig_name"] == ZIP_NAME, answer


@pytest.mark.browser
def test_many_photos_in_the_page(app: App, files: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app.url)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        box = page.locator("#max-side input[type=number]")
        box.fill("384")  # big enough that a photo takes a moment: the gallery is seen filling
        box.press("Enter")
        page.locator("#style label", has_text="Hayao").click()
        page.locator("#batch").get_by_text("Many photos").click()
        page.locator("#batch-files input[type=file]").set_input_files(
            [str(files["railway_crossing"]), str(files["text"]), str(files["cars_bridge_forest"])])
        expect(page.locator("#batch-files tr")).to_have_count(3, timeout=10_000)  # uploaded: one row per file
        # Every state the page shows, as (photos in the gallery, ZIP links): a photo converts in about a second, too
        # quickly for polling to be sure of seeing the gallery with one photo, so the DOM's own changes are kept.
        page.evaluate("""(zip) => { window.batchSeen = []; const look = () => {
            const state = [document.querySelectorAll('#batch-gallery img').length,
                           document.querySelectorAll("#batch-zip a[href$='/" + zip + "']").length];
            const last = window.batchSeen[window.batchSeen.length - 1];
            if (!last || last[0] !== state[0] || last[1] !== state[1]) window.batchSeen.push(state); };
            new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true}); }""",
                      ZIP_NAME)
        page.locator("#batch-convert").click()
        # per-photo progress over the gallery while it runs ("Photo 1 of 3: Stylizing (Hayao)")
        expect(page.locator("#batch-gallery")).to_contain_text(re.compile(r"Photo [1-3] of 3"), timeout=30_000)
        gallery = page.locator("#batch-gallery img")
        expect(page.locator(f"#batch-zip a[href$='/{ZIP_NAME}']")).to_have_count(1, timeout=120_000)
        expect(gallery).to_have_count(2)
        seen = page.evaluate("window.batchSeen")
        assert [1, 0] in seen and seen[-1] == [2, 1], seen  # the first photo showed alone, before the ZIP existed
        notice = page.locator("#batch-notice")
        expect(notice).to_contain_text("2 of 3 photos converted")
        expect(notice).to_contain_text("photo 2 (notes.png)")
        page.screenshot(path=str(tmp_path / "many-photos.png"), full_page=True)
        with page.expect_download() as download:
            page.locator(f"#batch-zip a[href$='/{ZIP_NAME}']").click()
        assert list(_entries(download.value.path())) == ["railway_crossing_hayao.png", "cars_bridge_forest_hayao.png"]
        # A fourth file is added to the three: over the limit, refused at once, the reason on the file box.
        page.locator("#batch-files input[type=file]").set_input_files([str(files["twin"])])
        expect(page.locator("#batch-files tr")).to_have_count(4, timeout=10_000)
        page.locator("#batch-convert").click()
        expect(page.locator("#batch-files")).to_contain_text(f"A batch holds at most {LIMIT} photos", timeout=10_000)
        expect(notice).to_contain_text("2 of 3 photos converted")  # the last batch's notice stays as it was
        page.close()


@pytest.mark.browser
def test_stop_ends_a_batch_after_the_photo_it_is_converting(app: App, files: dict[str, Path]) -> None:
    """The part's Stop: the batch ends between photos, says so, and leaves no ZIP and an empty gallery."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app.url)
        expect(page.locator("#convert")).to_be_visible(timeout=30_000)
        box = page.locator("#max-side input[type=number]")
        box.fill("0")  # native size: each photo takes a few seconds here, long enough to stop part-way
        box.press("Enter")
        page.locator("#style label", has_text="Hayao").click()
        page.locator("#batch").get_by_text("Many photos").click()
        page.locator("#batch-files input[type=file]").set_input_files(
            [str(files["railway_crossing"]), str(files["cars_bridge_forest"]), str(files["twin"])])
        expect(page.locator("#batch-files tr")).to_have_count(3, timeout=10_000)
        before, zips = stats(app.url), {p for p in app.results() if p.suffix in (".zip", ".part")}
        page.locator("#batch-convert").click()
        expect(page.locator("#batch-gallery")).to_contain_text(re.compile(r"Photo 1 of 3"), timeout=30_000)
        page.locator("#batch-stop").click()
        notice = page.locator("#batch-notice")
        expect(notice).to_contain_text(re.compile(r"Stopped: the batch was stopped after [12] of 3 photos; no ZIP "
                                                  r"was made\."), timeout=60_000)
        expect(page.locator("#batch-gallery img")).to_have_count(0)
        expect(page.locator("#batch-zip a")).to_have_count(0)
        assert wait_until(lambda: stats(app.url)["running"] == 0, timeout=30)
        after = stats(app.url)
        assert after["succeeded"] - before["succeeded"] in (1, 2), (before, after)  # not the third photo
        assert {p for p in app.results() if p.suffix in (".zip", ".part")} == zips  # none of this batch's
        page.close()


def test_result_names_never_repeat_and_a_failed_file_leaves_its_name_free() -> None:
    from animegan.batch import ResultNames

    names = ResultNames()
    assert names.take(names.free("IMG_1", "hayao")) == "IMG_1_hayao.png"
    assert names.free("img_1", "hayao") == "img_1_hayao_2.png"  # case ignored: both unpack on Windows and macOS
    assert names.free("IMG_2", "hayao") == "IMG_2_hayao.png"    # asked for, never taken (its photo failed) ...
    assert names.take(names.free("IMG_2", "hayao")) == "IMG_2_hayao.png"  # ... so it is still free
    assert names.take(names.free("IMG_1", "hayao", "mp4")) == "IMG_1_hayao.mp4"


def test_an_unfinished_zip_is_never_seen_under_its_name(tmp_path: Path) -> None:
    from animegan.batch import BatchTooLarge, ResultZip, check_count

    done, stopped = ResultZip(tmp_path / "a.zip"), ResultZip(tmp_path / "b.zip")
    for z in (done, stopped):
        z.add("x_hayao.png", b"png bytes")
        assert not z.path.exists()
    assert _entries(done.finish()) == {"x_hayao.png": b"png bytes"}
    stopped.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]
    check_count(3, 3)
    for count, limit, text in [(4, 3, "at most 3 photos"), (1, 0, "one photo at a time")]:
        with pytest.raises(BatchTooLarge, match=text):
            check_count(count, limit)


def test_the_max_batch_flag() -> None:
    from animegan.serving import load_config

    assert load_config([], environ={}).batch_limit() == 10
    assert load_config(["--max-batch", "30"], environ={}).batch_limit() == 16  # never more than --max-queue
    assert load_config(["--max-queue", "40"], environ={"ANIMEGAN_MAX_BATCH": "30"}).batch_limit() == 30
    assert load_config(["--max-batch", "0"], environ={}).batch_limit() == 0  # no batches
    with pytest.raises(SystemExit):
        load_config(["--max-batch", "-1"], environ={})
