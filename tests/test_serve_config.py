"""Service settings and limits (serve/config.py).

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


from painterly.serve import ServeConfig  # noqa: E402


def test_timeouts_are_checked_and_listed():
    from painterly.errors import PainterlyError

    for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
        with pytest.raises(PainterlyError, match=name.replace("_", "-")):
            ServeConfig(**{name: 0}).check()
        with pytest.raises(PainterlyError, match=name.replace("_", "-")):
            ServeConfig(**{name: float("inf")}).check()
