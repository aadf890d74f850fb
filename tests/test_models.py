"""Model registry (``painterly.models``) and the ``painterly models`` command."""

from __future__ import annotations

import json

import pytest
import torch

from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast import TransformerNet, save_model
from painterly.models import (
    default_model,
    install_model,
    list_models,
    resolve_model,
    user_models_dir,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTERLY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("painterly.fast.registry.shipped_models_dir", lambda: tmp_path / "shipped")
    return tmp_path / "home"


def _save(path, styles=("mosaic", "candy"), width=8):
    torch.manual_seed(0)
    save_model(TransformerNet(len(styles), width, n_residual=1), str(path), list(styles))
    return path


def test_install_list_resolve(home, tmp_path):
    assert list_models() == []
    run = tmp_path / "run7"
    src = _save(run / "model.safetensors")
    info = install_model(src)  # RUN/model.safetensors is named after its run folder
    assert info.name == "run7" and info.source == "user" and info.width == 8
    assert info.style_names == ["mosaic", "candy"]
    assert (user_models_dir() / "run7.safetensors").is_file()
    assert json.loads((user_models_dir() / "run7.json").read_text())["style_names"] == ["mosaic", "candy"]
    assert [m.name for m in list_models()] == ["run7"]
    assert resolve_model("run7") == user_models_dir() / "run7.safetensors"
    assert resolve_model(str(src)) == src  # a path resolves to itself
    assert default_model() == user_models_dir() / "run7.safetensors"  # the only one installed


def test_install_refuses_overwrite(home, tmp_path):
    src = _save(tmp_path / "a.safetensors")
    install_model(src, "same")
    before = (user_models_dir() / "same.safetensors").read_bytes()
    other = _save(tmp_path / "b.safetensors", styles=("x",))
    with pytest.raises(PainterlyError, match="already installed"):
        install_model(other, "same")
    assert (user_models_dir() / "same.safetensors").read_bytes() == before
    assert not [p for p in user_models_dir().iterdir() if p.name.startswith(".")]  # no temp files


def test_install_rejects_bad_input(home, tmp_path):
    with pytest.raises(PainterlyError, match="not found"):
        install_model(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    with pytest.raises(PainterlyError, match="cannot read"):
        install_model(junk)
    src = _save(tmp_path / "ok.safetensors")
    for bad in ("../evil", ".hidden", "a/b", "x" * 70):
        with pytest.raises(PainterlyError, match="bad model name"):
            install_model(src, bad)
    assert list_models() == []


def test_shipped_models_and_default(home, tmp_path):
    _save(tmp_path / "shipped" / "starry.safetensors", styles=("starry",))
    _save(tmp_path / "u.safetensors")
    install_model(tmp_path / "u.safetensors", "mine")
    assert [(m.name, m.source) for m in list_models()] == [("starry", "shipped"), ("mine", "user")]
    assert default_model().name == "starry.safetensors"
    with pytest.raises(PainterlyError, match="already installed"):  # no shadowing a shipped name
        install_model(tmp_path / "u.safetensors", "starry")


def test_unknown_and_broken(home, tmp_path):
    with pytest.raises(PainterlyError, match="no fast models are installed.*painterly train fast"):
        resolve_model("nope")
    with pytest.raises(PainterlyError, match="painterly train fast"):
        default_model()
    user_models_dir().mkdir(parents=True)
    (user_models_dir() / "broken.safetensors").write_bytes(b"garbage")
    [info] = list_models()
    assert info.error
    with pytest.raises(PainterlyError, match="unusable"):
        resolve_model("broken")
    with pytest.raises(PainterlyError, match="model file not found"):
        resolve_model(str(tmp_path / "missing.safetensors"))


def test_cli_models(home, tmp_path, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "none installed" in out and "painterly train fast" in out and "adain decoder" in out
    src = _save(tmp_path / "m.safetensors")
    assert main(["models", "--install", str(src), "--name", "pair"]) == 0
    assert "installed 'pair'" in capsys.readouterr().out
    assert main(["models", "--install", str(src), "--name", "pair"]) == 2
    assert "already installed" in capsys.readouterr().err
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "pair" in out and "mosaic, candy" in out and "user" in out
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fast"][0]["name"] == "pair" and data["fast"][0]["width"] == 8
    assert main(["models", "--name", "x"]) == 2
    out = tmp_path / "o.png"
    assert main(["stylize", "builtin:chelsea", "--method", "fast", "--model", "pair", "--size", "40",
                 "-o", str(out)]) == 0
    assert out.is_file()


def test_fast_package_never_imports_models():
    # The layering: painterly.models builds on painterly.fast (its registry and loader), not the reverse.
    import ast
    from pathlib import Path

    import painterly.fast

    for path in Path(painterly.fast.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert target not in ("..models", "painterly.models"), f"{path.name} imports {target}"
                assert not (node.level == 2 and node.module is None
                            and any(a.name == "models" for a in node.names)), path.name


def test_install_never_overwrites_a_model_that_appears_meanwhile(home, tmp_path, monkeypatch):
    import shutil

    src = _save(tmp_path / "a.safetensors")
    real_copy = shutil.copyfile

    def copy_while_another_installs(a, b):
        (user_models_dir() / "race.safetensors").write_bytes(b"the other install")
        return real_copy(a, b)

    monkeypatch.setattr(shutil, "copyfile", copy_while_another_installs)
    with pytest.raises(PainterlyError, match="refusing to overwrite"):
        install_model(src, "race")
    assert (user_models_dir() / "race.safetensors").read_bytes() == b"the other install"
    assert sorted(p.name for p in user_models_dir().iterdir()) == ["race.safetensors"]
