"""One configuration table: every flag has its variable, one truthy parser, old names as deprecated aliases, and the
app and the CLI read offline mode (HF_HUB_OFFLINE included) the same way."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from animegan import flags, settings
from animegan.serving import load_config, parser

REPO = Path(__file__).resolve().parents[1]


def test_every_app_flag_comes_from_the_table_with_its_variable() -> None:
    options = {a.dest: a for a in parser()._actions if a.dest != "help"}
    app_flags = {name for name, f in flags.FLAGS.items() if f.kind != "env"}
    assert set(options) == app_flags
    for name in app_flags:
        f = flags.FLAGS[name]
        assert f.env.startswith("ANIMEGAN_") and f.option in options[name].option_strings
    text = parser().format_help()
    assert all(f.env in text for f in flags.FLAGS.values())  # --help lists every variable


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("yes", True), (" On ", True), ("0", False), ("off", False),
                                            ("", None), (None, None)])
def test_one_truthy_parser(raw: str | None, value: bool | None) -> None:
    assert flags.truthy(raw) is value


def test_a_garbled_switch_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        load_config([], {"ANIMEGAN_METRICS": "perhaps"})


def test_result_cache_knobs_renamed_old_names_still_work(caplog: pytest.LogCaptureFixture) -> None:
    new = load_config(["--result-cache-size", "64M", "--result-cache", "redis://h:1/0"], {})
    assert (new.result_cache_size, new.result_cache) == (64 << 20, "redis://h:1/0")
    assert load_config([], {"ANIMEGAN_RESULT_CACHE_SIZE": "0"}).result_cache_size == 0
    with caplog.at_level(logging.WARNING):
        old = load_config(["--cache-size", "32M", "--cache", "redis://h:2/0"], {})
        env = load_config([], {"ANIMEGAN_CACHE_SIZE": "16M", "ANIMEGAN_CACHE": "redis://h:3/0"})
    assert (old.result_cache_size, old.result_cache) == (32 << 20, "redis://h:2/0")
    assert (env.result_cache_size, env.result_cache) == (16 << 20, "redis://h:3/0")
    warned = caplog.text
    assert "--cache-size is deprecated; use --result-cache-size" in warned
    assert "ANIMEGAN_CACHE is deprecated; use ANIMEGAN_RESULT_CACHE" in warned
    # The weights cache keeps its name: ANIMEGAN_CACHE_DIR is not the result cache.
    assert settings.ENV_CACHE_DIR == "ANIMEGAN_CACHE_DIR"


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "1", "ANIMEGAN_OFFLINE": "0"},
                                 {"ANIMEGAN_OFFLINE": "yes"}])
def test_the_app_honours_offline_as_the_engine_does(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config([], env).offline is True
    for k in ("HF_HUB_OFFLINE", "ANIMEGAN_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert settings.offline() is True
    assert load_config([], {}).offline is None and load_config(["--offline"], {}).offline is True


def test_the_cli_honours_hf_hub_offline(tmp_path: Path, photos: dict[str, Path]) -> None:
    """No weights anywhere, HF_HUB_OFFLINE=1 (and ANIMEGAN_OFFLINE=0): the CLI refuses to download, naming the files."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "ANIMEGAN_OFFLINE": "0",
           "ANIMEGAN_CACHE_DIR": str(tmp_path / "cache"), "ANIMEGAN_WEIGHTS_MIRROR": "http://127.0.0.1:9/"}
    run = subprocess.run([sys.executable, "-m", "animegan", str(photos["railway_crossing"]), "--style", "shinkai",
                          "--out", str(tmp_path / "out")], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 2, run.stderr
    assert "Shinkai-53.ckpt" in run.stderr and "offline" in run.stderr.lower()
    assert "could not download" not in run.stderr  # it never tried


def test_the_cli_options_come_from_the_table() -> None:
    """``python -m animegan`` and its ``download`` command declare no option of their own: each is a table entry,
    and an option that means what the app's does is the app's entry (one help text)."""
    from animegan.__main__ import parse_args, parse_download_args
    from animegan.framing import FRAMINGS
    from animegan.precision import PRECISIONS

    args = parse_args(["photo.jpg"])
    assert set(vars(args)) == {"inputs", *flags.CLI_FLAGS}
    assert set(vars(parse_download_args([]))) == {"styles", *flags.DOWNLOAD_FLAGS}
    for name in ("device", "precision", "weights_dir", "offline", "max_pixels", "tile"):
        assert flags.CLI_FLAGS[name].help == flags.FLAGS[name].help
    # the budget's default differs: one user's for the command, a share per conversion in the app; each help says so
    assert flags.CLI_FLAGS["memory_budget"].env == flags.FLAGS["memory_budget"].env
    assert "for this one command" in flags.CLI_FLAGS["memory_budget"].help
    assert "per conversion" in flags.FLAGS["memory_budget"].help and "--concurrency" in flags.FLAGS["memory_budget"].help
    assert flags.CLI_FLAGS["framing"].choices == FRAMINGS and flags.FLAGS["precision"].choices == PRECISIONS
    text = subprocess.run([sys.executable, "-m", "animegan", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True).stdout
    assert "face_paint_512_v2" in text and "{styles}" not in text and "{scenes}" not in text  # filled in
    assert all(flags.FLAGS[n].env in text for n in flags.ENGINE_VARIABLES)  # the variables the CLI honours


def test_the_port_variable_is_the_tables() -> None:
    from animegan.ports import busy_port_message

    assert flags.FLAGS["port"].env in busy_port_message(7860)


@pytest.mark.parametrize(("raw", "default", "value"), [(None, True, True), ("", True, True), ("0", True, False),
                                                        ("off", True, False), ("maybe", True, True),
                                                        ("yes", False, True), ("maybe", False, False)])
def test_engine_switches_fall_back_to_their_default(raw: str | None, default: bool, value: bool) -> None:
    """The engine's on/off variables (ANIMEGAN_MALLOC_TUNING, the offline ones) go through the same parser."""
    assert flags.switch(raw, default=default) is value


def test_malloc_tuning_off_is_read_by_the_one_parser() -> None:
    code = "from animegan import memory; print(memory.tune_cpu_allocator())"
    for raw, expect in (("off", "False"), ("No", "False"), ("on", "True"), ("maybe", "True")):
        run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                             check=True, env={**__import__("os").environ, "ANIMEGAN_MALLOC_TUNING": raw})
        assert run.stdout.strip() == expect, run.stderr
