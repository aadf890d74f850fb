"""``painterly serve`` (cli/serve.py): help and a bad decoder file.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")




def test_cli_serve_help_and_bad_file(tmp_path, capsys):
    from painterly.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    assert "--max-upload-mb" in capsys.readouterr().out
    assert main(["serve", "--decoder", str(tmp_path / "missing.safetensors")]) == 2
    assert "not found" in capsys.readouterr().err


def test_every_server_setting_is_a_flag_with_its_default():
    """``painterly serve``'s flags are the ServeConfig settings: given none, the config is the
    defaults; each given one lands in its field."""
    import argparse
    from dataclasses import fields

    from painterly.cli.serve import add_config_flags, config_from_args
    from painterly.serve.config import ServeConfig

    p = argparse.ArgumentParser()
    add_config_flags(p)
    assert config_from_args(p.parse_args([])) == ServeConfig()
    settings = [f for f in fields(ServeConfig) if "help" in f.metadata]
    assert {"max_upload_mb", "workers", "preload_gatys", "style_cache"} <= {f.name for f in settings}
    cfg = config_from_args(p.parse_args(["--max-upload-mb", "3.5", "--workers", "2",
                                         "--no-preload-gatys", "--device", "cpu"]))
    assert (cfg.max_upload_mb, cfg.workers, cfg.preload_gatys, cfg.device) == (3.5, 2, False, "cpu")


@pytest.mark.parametrize("argv, words", [(["--max-upload-mb", "0"], "--max-upload-mb must be positive"),
                                         (["--workers", "two"], "--workers"),
                                         (["--memory-wait", "-1"], "--memory-wait"),
                                         (["--style-cache", "-1"], "--style-cache"),
                                         (["--token", "short"], "--token must be at least 8")])
def test_bad_server_settings_are_one_line(capsys, argv, words):
    from painterly.cli import main

    try:
        rc = main(["serve", *argv])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and words in err[0], err


def test_token_from_the_environment_and_loopback(monkeypatch):
    import argparse

    from painterly.cli.serve import add_config_flags, config_from_args, is_loopback

    p = argparse.ArgumentParser()
    add_config_flags(p)
    monkeypatch.setenv("PAINTERLY_TOKEN", "from-the-env-1")
    assert config_from_args(p.parse_args([])).token == "from-the-env-1"
    assert config_from_args(p.parse_args(["--token", "given-flag-22"])).token == "given-flag-22"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
