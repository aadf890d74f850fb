"""The service's OpenAPI schema (serve/openapi.py), served offline.

Small images (<= 96 px) and a random AdaIN decoder keep it fast on CPU (the ``decoder_file`` and
``client`` fixtures in conftest.py, the helpers in serve_helpers.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")




def test_openapi_schema_is_served_offline(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for route in ("/v1/stylize", "/invocations", "/ping", "/v1/methods"):
        assert route in spec["paths"]
    body = spec["paths"]["/v1/stylize"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/json" in body
