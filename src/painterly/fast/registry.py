"""Which fast networks ``--model NAME`` can name: the shipped ones and the user's installed ones.

Two places are searched:

* shipped: ``painterly/assets/fast/*.safetensors`` inside the package (trained networks we ship);
* user: ``$PAINTERLY_HOME/models`` (default ``~/.cache/painterly/models``), filled by
  ``painterly models --install FILE`` (:func:`painterly.models.install_model`).

A model is a ``.safetensors`` file written by :func:`painterly.fast.model.save_model` (its config —
style names, width — sits in the file's metadata and in a ``.json`` beside it). Listing reads only
that config, never the tensors, so it is cheap. This module is the fast method's own lookup:
:mod:`painterly.models` builds on it (installing, the overview across methods), never the reverse.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors import safe_open

from ..errors import PainterlyError, echo

HOME_ENV = "PAINTERLY_HOME"
TRAIN_HINT = ("train one with `painterly train fast --style S.jpg --content-dir DIR --out RUN`, then "
              "`painterly models --install RUN/model.safetensors --name NAME`")


def painterly_home() -> Path:
    """``$PAINTERLY_HOME`` or ``~/.cache/painterly``: where user data (models) lives."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "painterly"


def user_models_dir() -> Path:
    """Folder of user-installed fast models."""
    return painterly_home() / "models"


def shipped_models_dir() -> Path:
    """Folder of fast models shipped inside the package."""
    return Path(__file__).resolve().parent.parent / "assets" / "fast"


#: The kinds of fast network a model file may hold.
FAST_KINDS = ("fast-transformer", "fast-lite")


@dataclass
class ModelInfo:
    """What ``painterly models`` shows about one installed model file."""

    name: str
    path: Path
    source: str  # "shipped" or "user"
    style_names: list[str] = field(default_factory=list)
    width: int | None = None
    n_residual: int | None = None
    kind: str = "fast-transformer"  # or "fast-lite" (painterly.fast.lite)
    size_bytes: int = 0
    error: str | None = None  # why the file is not usable, if it is not

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def read_config(path: str | os.PathLike) -> dict:
    """A model file's config, from its safetensors metadata or its ``.json`` sidecar (no tensors
    are read)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as exc:
            raise PainterlyError(f"cannot read model file {path}: {type(exc).__name__}") from None
        if "painterly_config" in meta:
            try:
                return json.loads(meta["painterly_config"])
            except ValueError:
                raise PainterlyError(f"model file {path} holds a broken config") from None
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            return json.loads(side.read_text())
        except (OSError, ValueError):
            raise PainterlyError(f"config file is not valid JSON: {side}") from None
    return {}


def model_info(path: str | os.PathLike, source: str) -> ModelInfo:
    """Describe one model file; a broken file is reported in ``error``, not raised."""
    path = Path(path)
    info = ModelInfo(name=path.stem, path=path, source=source)
    try:
        info.size_bytes = path.stat().st_size
        config = read_config(path)
    except (OSError, PainterlyError) as exc:
        info.error = str(exc)
        return info
    if config.get("kind", "fast-transformer") not in FAST_KINDS or "n_styles" not in config:
        info.error = "not a fast network (no n_styles in its config)"
        return info
    try:
        info.kind = str(config.get("kind", "fast-transformer"))
        n = int(config["n_styles"])
        info.width = int(config.get("width", 32))
        info.n_residual = int(config.get("n_residual", 5 if info.kind == "fast-transformer" else 0))
    except (TypeError, ValueError):
        info.error = "broken config (n_styles/width are not numbers)"
        return info
    names = config.get("style_names")
    info.style_names = ([str(s) for s in names] if isinstance(names, list) and len(names) == n
                        else [f"style{i}" for i in range(n)])
    return info


def _scan(folder: Path, source: str) -> list[ModelInfo]:
    if not folder.is_dir():
        return []
    return [model_info(p, source) for p in sorted(folder.glob("*.safetensors")) if p.is_file()]


def shipped_models() -> list[ModelInfo]:
    """Usable fast models shipped in the package."""
    return [m for m in _scan(shipped_models_dir(), "shipped") if m.error is None]


def user_models() -> list[ModelInfo]:
    """Fast models in the user folder (broken ones included, with ``error`` set)."""
    return _scan(user_models_dir(), "user")


def list_models() -> list[ModelInfo]:
    """All installed fast models: shipped first, then the user's."""
    return _scan(shipped_models_dir(), "shipped") + user_models()


def _installed_summary() -> str:
    usable = [m for m in list_models() if m.error is None]
    if not usable:
        return f"no fast models are installed; {TRAIN_HINT}"
    return "installed: " + ", ".join(f"{m.name} ({', '.join(m.style_names)})" for m in usable)


def resolve_model(model: str | os.PathLike) -> Path:
    """A model name (see :func:`list_models`) or a path -> the model file."""
    text = str(model).strip()
    if not text:
        raise PainterlyError(f"empty model name ({_installed_summary()})")
    path = Path(text).expanduser()
    if path.is_file():
        return path
    looks_like_path = (path.suffix in (".safetensors", ".pth", ".pt") or os.sep in text
                       or (os.altsep is not None and os.altsep in text))
    if looks_like_path:
        raise PainterlyError(f"model file not found: {path}")
    for info in list_models():
        if info.name == text:
            if info.error:
                raise PainterlyError(f"installed model '{text}' is unusable: {info.error} ({info.path})")
            return info.path
    raise PainterlyError(f"unknown model {echo(text)} ({_installed_summary()})")


def default_model() -> Path:
    """The model ``--method fast`` uses without ``--model``: the first shipped one, else the only
    user one; otherwise an error that says what is installed and how to train one."""
    shipped = shipped_models()
    if shipped:
        return shipped[0].path
    usable = [m for m in user_models() if m.error is None]
    if len(usable) == 1:
        return usable[0].path
    if usable:
        raise PainterlyError(f"method 'fast' needs --model NAME or a .safetensors file "
                             f"({_installed_summary()})")
    raise PainterlyError(f"method 'fast' needs a trained model (--model FILE.safetensors); "
                         f"{_installed_summary()}")
