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
