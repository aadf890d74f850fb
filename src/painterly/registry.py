"""The AdaIN networks, declared once: name -> file kind, loader, shipped asset, default devices.

Every front end (the CLI, the server, export, video, Ray, augment, eval, the fast trainer's
teacher) takes a network *name* from the user and resolves it here, once, with
:func:`resolve_network`: ``"auto"`` becomes the network that is the default on the device
(:attr:`NetworkSpec.default_on`) and installed, any other name must be registered. A model file
says which network it is by its config's ``kind`` (:func:`network_of_config`), so a file and a
name can be checked against each other with one message (:func:`mismatch`).

A new network is one :func:`register_network` row; its loader returns ``(module, config)``
where the module has the face :class:`~painterly.adain.networks.AdaINNetworks` uses: a
``decoder``, and an ``encoder`` of its own (otherwise the frozen VGG19 encoder runs). The table
imports no torch, so option tables and ``--help`` can list the names cheaply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PainterlyError, echo

#: The name that means "the default network of the device it runs on".
AUTO = "auto"
#: Where shipped model files live.
ASSETS = Path(__file__).resolve().parent / "assets"

#: A loader: a model file's path -> (the module, its config). A ``"module:function"`` string is
#: imported on first use (keeps this table free of torch).
Loader = str | Callable[[str], tuple[Any, dict]]


@dataclass(frozen=True)
class NetworkSpec:
    """One AdaIN network: how its files are recognized and loaded, and what ships."""

    name: str
    summary: str
    #: The ``kind`` values its model files' configs carry (None: files with no kind, e.g. a VGG
    #: decoder from the reference code's ``.pth``).
    file_kinds: tuple[str | None, ...]
    loader: Loader
    #: The shipped file: a name under ``painterly/assets`` or a path.
    asset: str | Path
    #: Device types ("cpu", "cuda", "mps") on which ``auto`` picks it when it is installed.
    default_on: tuple[str, ...] = ()
    #: What to do when no file of it is installed (the end of the error line).
    install_hint: str = ""
    #: Columns of the image's own reflection added at its right edge before painting and cut
    #: off after (:meth:`painterly.adain.AdaINPipeline.run`): a network that learned to draw a
    #: stripe along its right border paints it there, off the picture.
    right_margin: int = 0

    def asset_path(self) -> Path:
        """The shipped file's path (it may not exist)."""
        p = Path(self.asset)
        return p if p.is_absolute() else ASSETS / p

    def installed(self) -> bool:
        """Whether the shipped file is there."""
        return self.asset_path().is_file()

    def load(self, path: str | Path) -> tuple[Any, dict]:
        """The module and config of a model file of this network."""
        loader = self.loader
        if isinstance(loader, str):
            module, _, func = loader.partition(":")
            loader = getattr(importlib.import_module(module), func)
        model, config = loader(str(path))
        model.network_name = self.name  # what network_kind() reports for this module
        return model, config


#: The table, in the order ``auto`` tries and ``--help`` lists. The VGG decoder is the fallback
#: of ``auto`` (the higher-fidelity network, the default on a GPU); the lite network is the CPU default
#: (real time there: docs/MODEL_CARD.md, "The lite network").
NETWORKS: dict[str, NetworkSpec] = {}


def register_network(spec: NetworkSpec) -> None:
    """Add a network (or replace one of the same name)."""
    if not spec.name or spec.name == AUTO or not spec.name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"bad network name {spec.name!r}")
    NETWORKS[spec.name] = spec


def unregister_network(name: str) -> None:
    """Remove a network (tests register toys and take them away again)."""
    NETWORKS.pop(name, None)


class _Choices(Sequence):
    """``("auto", *names)``, read from the table each time: option tables and argparse hold
    this object, so a network registered later is a valid choice everywhere."""

    def _names(self) -> tuple[str, ...]:
        return (AUTO, *NETWORKS)

    def __getitem__(self, i: Any) -> Any:
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, x: object) -> bool:
        return x == AUTO or x in NETWORKS

    def __add__(self, other: Sequence[str]) -> tuple[str, ...]:
        return self._names() + tuple(other)

    def __repr__(self) -> str:
        return repr(self._names())


#: Every valid ``network`` value, live.
CHOICES: Sequence[str] = _Choices()


def spec(name: str) -> NetworkSpec:
    """The row of a concrete network name (one-line error naming the choices otherwise)."""
    try:
        return NETWORKS[name]
    except (KeyError, TypeError):
        raise PainterlyError(f"unknown network {echo(name)} "
                             f"(choose from {', '.join(CHOICES)})") from None


def resolve_network(name: str | None, device_type: str = "cpu") -> str:
    """The concrete network ``name`` means on a device of ``device_type``: ``auto`` (or None)
    is the first installed network that is the default there, else the first installed one,
    else the first registered; any other name must be registered."""
    if name is None or name == AUTO:
        rows = list(NETWORKS.values())
        for row in rows:
            if device_type in row.default_on and row.installed():
                return row.name
        for row in rows:
            if row.installed():
                return row.name
        return rows[0].name
    return spec(name).name


def network_of_config(config: dict, source: str = "model file") -> str:
    """Which network a model file is, by its config's ``kind`` (no kind: the network whose
    files carry none). A kind no network reads is a one-line error."""
    kind = config.get("kind")
    for row in NETWORKS.values():
        if kind in row.file_kinds:
            return row.name
    raise PainterlyError(f"{source} is not an AdaIN model (its kind is {echo(str(kind))}; "
                         f"networks: {', '.join(NETWORKS)})")


def mismatch(asked: str, got: str, source: str) -> PainterlyError:
    """The one refusal of a model that is not the network asked for (CLI and server alike)."""
    return PainterlyError(f"network {asked} was asked for, but {source} is a {got} network "
                          f"(use network {got} or auto)")


def missing(name: str) -> PainterlyError:
    """The refusal of a network whose shipped file is not installed."""
    row = spec(name)
    hint = f": {row.install_hint}" if row.install_hint else ""
    return PainterlyError(f"no {name} AdaIN network is installed{hint}")


register_network(NetworkSpec(
    "vgg", "VGG19 to relu4_1 and its mirror decoder (higher fidelity)", (None, "adain-decoder"),
    "painterly.adain.model:load_decoder", "adain_decoder.safetensors", ("cuda", "mps"),
    "train one with `painterly train adain ...` and pass it with --decoder FILE (.safetensors or "
    ".pth), or use --method gatys"))
register_network(NetworkSpec(
    "lite", "a slim encoder and decoder distilled from the VGG one (real time on a CPU)",
    ("adain-lite",), "painterly.adain.lite:load_lite", "adain_lite.safetensors", ("cpu",),
    "train one with `painterly train adain --network lite ...` and pass it with --decoder FILE",
    # The lite networks (and artworks8, a lite network) draw a stripe along the right edge:
    # over the outer 6 columns the mean gradient is 2.8x (lite) and 4.0x (artworks8) the strip
    # inside it, on five dev photos at 384 px; with this margin 0.8-0.9, as at the other edges.
    right_margin=8))
