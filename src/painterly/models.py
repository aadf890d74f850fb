"""Installed models across methods: what ``painterly models`` lists and installs.

* fast networks: found by :mod:`painterly.fast.registry` (shipped in the package, or installed in
  ``$PAINTERLY_HOME/models``); its lookup names are re-exported here; :func:`install_model` copies
  a trained network into the user folder after checking it loads;
* the AdaIN decoder: :func:`adain_decoder_status`.

This module depends on :mod:`painterly.fast`, never the reverse.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from .atomic import write_atomic
from .errors import PainterlyError
from .fast.model import load_model
from .fast.registry import (
    HOME_ENV,
    TRAIN_HINT,
    ModelInfo,
    default_model,
    list_models,
    model_info,
    painterly_home,
    read_config,
    resolve_model,
    shipped_models,
    shipped_models_dir,
    user_models,
    user_models_dir,
)

__all__ = ["HOME_ENV", "TRAIN_HINT", "ModelInfo", "adain_decoder_status", "check_name", "default_model",
           "install_model", "list_models", "model_info", "painterly_home", "read_config", "resolve_model",
           "shipped_models", "shipped_models_dir", "user_models", "user_models_dir"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    """A model name usable as a file name: letters, digits, ``._-``, at most 64 characters."""
    if name.endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    if not _NAME_RE.match(name):
        raise PainterlyError(f"bad model name '{name}' (use letters, digits, '.', '_', '-'; "
                             f"at most 64 characters, not starting with '.' or '-')")
    return name


def install_model(source: str | os.PathLike, name: str | None = None) -> ModelInfo:
    """Copy a trained fast model (and its JSON config) into the user folder as ``NAME``.

    The file is checked to load as a fast network first. Refuses to replace an installed model
    of the same name (shipped or user).
    """
    src = Path(source).expanduser()
    if not src.is_file():
        raise PainterlyError(f"model file not found: {src}")
    if src.suffix != ".safetensors":
        raise PainterlyError(f"only .safetensors model files can be installed, not {src.name}")
    net, config = load_model(str(src))  # raises a clear error for anything else
    if name is None:
        name = src.parent.name if src.stem == "model" and src.parent.name else src.stem
    name = check_name(name)
    for info in list_models():
        if info.name == name:
            raise PainterlyError(f"a model named '{name}' is already installed ({info.path}); "
                                 f"choose another --name")
    folder = user_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{name}.safetensors"
    side = dest.with_suffix(".json")
    if dest.exists() or side.exists():
        raise PainterlyError(f"refusing to overwrite {dest if dest.exists() else side}")
    try:  # exclusive: fails if dest appeared meanwhile, never overwrites
        write_atomic(dest, lambda tmp: shutil.copyfile(src, tmp), exclusive=True)
    except FileExistsError:
        raise PainterlyError(f"refusing to overwrite {dest}") from None
    write_atomic(side, json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    del net
    return model_info(dest, "user")


def adain_lite_status() -> tuple[Path, bool]:
    """(default lite AdaIN network path, whether it is installed)."""
    path = Path(__file__).resolve().parent / "assets" / "adain_lite.safetensors"
    return path, path.is_file()


def adain_decoder_status() -> tuple[Path, bool]:
    """(default AdaIN decoder path, whether it is installed)."""
    try:  # imported here: a build may leave the adain method out
        from .adain import default_model_path

        path = Path(default_model_path("vgg"))
    except (ImportError, PainterlyError):
        path = Path(__file__).resolve().parent / "assets" / "adain_decoder.safetensors"
    return path, path.is_file()
