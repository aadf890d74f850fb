"""Losses shared by every method: pure functions of feature tensors.

Feature scale: the default VGG19 weights are the raw Caffe ones, whose activations differ by more
than an order of magnitude between layers (mean about 25 at relu1_1, 135 at relu2_1, 133 at
relu3_1, 514 at relu4_1, 42 at relu5_1). Every loss here is therefore normalized per layer, so that
one weight works across layers, image sizes and backbones:

* Gram matrices are divided by the number of positions (``C x H x W``), so their size does not
  depend on the image size; the style loss of a layer is the MSE of the two Gram matrices divided
  by the squared mean activation of the target (``layer_norm``), making every layer count about
  equally whatever its raw scale.
* Content loss is the MSE of the features divided by the target's mean squared activation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F


class _Gram(torch.autograd.Function):
    """``F F^T / n`` with a one-matmul backward: ``dF = ((dG + dG^T) / n) F``.

    Autograd's own backward for ``bmm(f, f.transpose(1, 2))`` runs two full-size matmuls and adds
    two ``(C, H*W)`` gradients; this one runs one matmul (a Gatys step spends ~17% in Gram matmuls),
    and divides the small ``(C, C)`` matrix rather than the ``(C, H*W)`` result.

    bfloat16 features (autocast) are multiplied in bfloat16 (2.6x faster on a CPU with native
    bf16; the products accumulate in float32 inside the matmul) and the Gram comes out float32;
    the backward matmul also runs in bfloat16, since its result feeds a bfloat16 network anyway.
    float16 features are widened first: their Gram entries overflow float16's range.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, f: torch.Tensor, n: float) -> torch.Tensor:
        ctx.save_for_backward(f)
        ctx.n = n
        g = torch.bmm(f, f.transpose(1, 2))
        return (g.float() if g.dtype == torch.bfloat16 else g) / n

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (f,) = ctx.saved_tensors
        g = (grad + grad.transpose(1, 2)) / ctx.n
        return torch.bmm(g.to(f.dtype), f), None


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, C)`` Gram matrix normalized by ``C * H * W`` (float32 for
    low-precision features)."""
    n, c, h, w = features.shape
    if features.dtype not in (torch.float32, torch.float64, torch.bfloat16):
        features = features.float()
    return _Gram.apply(features.reshape(n, c, h * w), float(c * h * w))


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation, shaped ``(N, C, 1, 1)``.

    ``eps`` is added to the variance inside the square root, so the gradient stays finite for a
    constant channel.
    """
    # Two passes of plain reductions (mean, then the mean square about it), in float32 for a
    # half-precision input: the same variance to 1e-7, and 4x faster on a CPU than
    # ``Tensor.var`` (whose one-pass kernel ran at a third of a Gelem/s on relu3_1, 7% of a
    # lite AdaIN call in fp32); no reshape copy of a channels_last tensor either.
    x = features if features.dtype in (torch.float32, torch.float64) else features.float()
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = torch.square(x - mean).mean(dim=(2, 3), keepdim=True) + eps
    return mean.to(features.dtype), var.sqrt().to(features.dtype)


def feature_scale(target: torch.Tensor) -> torch.Tensor:
    """Mean squared activation of ``target`` (detached), the per-layer normalizer."""
    return target.detach().float().pow(2).mean().clamp_min(1e-8)


def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalized MSE between feature maps (target scale divided out)."""
    return F.mse_loss(output, target) / feature_scale(target)


def style_loss_gram(output: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
                    layer_weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Weighted sum over layers of the Gram-matrix MSE, each normalized by the target's scale.

    ``target_grams`` maps layer -> Gram matrix of the style (``(1, C, C)``, or batched).
    """
    total = None
    for name, g_target in target_grams.items():
        g = gram_matrix(output[name])
        # The Gram's entries scale like the square of activations: normalize by its own mean.
        layer = F.mse_loss(g, g_target.expand_as(g)) / g_target.detach().abs().mean().pow(2).clamp_min(1e-12)
        w = 1.0 if layer_weights is None else float(layer_weights.get(name, 1.0))
        total = layer * w if total is None else total + layer * w
    assert total is not None, "style_loss_gram needs at least one layer"
    return total


def style_loss_mean_std(output: Mapping[str, torch.Tensor],
                        target_stats: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                        layer_weights: Mapping[str, float] | None = None,
                        normalize: bool = True, reduce: str = "sum",
                        distance: str = "mse") -> torch.Tensor:
    """Style loss of AdaIN: distance of per-channel means plus distance of standard deviations.

    ``normalize`` divides each layer by the target's mean squared std + mean (so every layer counts
    with raw Caffe features); ``reduce`` is "sum" or "mean" over layers; ``distance`` is "mse"
    (squared error, the paper's) or "l2" (Euclidean norm per sample, averaged).
    """
    losses = []
    for name, (mu_t, sd_t) in target_stats.items():
        mu, sd = mean_std(output[name])
        mu_t, sd_t = mu_t.expand_as(mu), sd_t.expand_as(sd)
        if distance == "l2":
            d = ((mu - mu_t).flatten(1).norm(dim=1) + (sd - sd_t).flatten(1).norm(dim=1)).mean()
            scale = (mu_t.pow(2) + sd_t.pow(2)).flatten(1).sum(1).mean().sqrt()
        else:
            d = F.mse_loss(mu, mu_t) + F.mse_loss(sd, sd_t)
            scale = (mu_t.pow(2) + sd_t.pow(2)).mean()
        if normalize:
            d = d / scale.detach().clamp_min(1e-8)
        w = 1.0 if layer_weights is None else float(layer_weights.get(name, 1.0))
        losses.append(d * w)
    total = torch.stack(losses).sum()
    return total / len(losses) if reduce == "mean" else total


def per_sample_content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``content_loss`` of each batch item (normalized by its own target), averaged."""
    return torch.stack([content_loss(output[i:i + 1], target[i:i + 1])
                        for i in range(output.shape[0])]).mean()


def layer_stats(features: Mapping[str, torch.Tensor],
                layers: Sequence[str] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``mean_std`` of each layer of ``features`` (float32; ``layers``: these only, in order)."""
    return {k: mean_std(features[k].float()) for k in (features if layers is None else layers)}


def per_sample_features(features: Mapping[str, torch.Tensor],
                        layers: Iterable[str]) -> list[dict[str, torch.Tensor]]:
    """Each batch item's features at ``layers``, as ``(1, C, H, W)`` float32 tensors."""
    n = next(iter(features.values())).shape[0]
    return [{k: features[k][i:i + 1].float() for k in layers} for i in range(n)]


def adain_losses(output: Mapping[str, torch.Tensor], target: torch.Tensor,
                 style_stats: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                 reduce: str = "sum", distance: str = "mse", content_layer: str = "relu4_1",
                 items: list[dict[str, torch.Tensor]] | None = None,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The AdaIN objective's (content, style) losses, the two figures ``painterly eval`` reports
    and every AdaIN-loss trainer optimizes, of the encoder's features ``output`` of a batch:

    * content: ``output[content_layer]`` against ``target`` (the AdaIN target
      ``AdaIN(f(c), f(s))``), :func:`content_loss`;
    * style: the per-channel mean/std at ``style_stats``' layers against the style's
      (:func:`style_loss_mean_std` with ``reduce`` and ``distance``).

    Both per sample (each normalized by its own targets), then averaged over the batch.
    ``items``: the batch's :func:`per_sample_features` at those layers, where the caller reuses
    them for another term (one float32 copy of each). ``weights``: each item's style loss is
    multiplied by its weight before the mean (a fast network's per-style weights)."""
    lc = per_sample_content_loss(output[content_layer].float(), target)
    items = per_sample_features(output, style_stats) if items is None else items
    ls = weighted_mean(torch.stack([
        style_loss_mean_std(feats, {k: (m[i:i + 1], sd[i:i + 1]) for k, (m, sd) in style_stats.items()},
                            reduce=reduce, distance=distance)
        for i, feats in enumerate(items)]), weights)
    return lc, ls


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of per-item ``values``, each multiplied by its weight first (None: plain mean)."""
    return values.mean() if weights is None else (values * weights.to(values)).mean()


def grid_profile(image: torch.Tensor, period: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean absolute horizontal and vertical luminance step at each phase ``x mod period``.

    ``image`` is ``(N, C, H, W)``; returns two ``(N, period)`` profiles. In a photograph every phase
    has about the same mean step; a decoder that upsamples 2x three times leaves a lattice at the
    8-pixel cell boundaries (and checkerboards at 2 and 4, which also repeat every 8), so some
    phases stand out.
    """
    gray = image.float().mean(dim=1)
    horizontal = (gray[..., :, 1:] - gray[..., :, :-1]).abs()                    # (N, H, W-1)
    vertical = (gray[..., 1:, :] - gray[..., :-1, :]).abs().transpose(1, 2)       # (N, W, H-1)
    profiles = []
    for d in (horizontal, vertical):  # steps along the last axis
        n = d.shape[-1] // period * period
        if n == 0:
            raise ValueError(f"image side under {period + 1} pixels: no grid profile")
        profiles.append(d[..., :n].reshape(d.shape[0], d.shape[1], n // period, period).mean(dim=(1, 2)))
    return profiles[0], profiles[1]


def grid_score(image: torch.Tensor, period: int = 8) -> torch.Tensor:
    """How strongly an image shows a ``period``-pixel lattice, per image: ``(max - min) / mean`` of
    its phase profiles (:func:`grid_profile`), averaged over the two directions. Photographs score
    about 0.03-0.14; a decoder's visible 8-pixel grid 0.35 and more."""
    scores = [(p.amax(dim=1) - p.amin(dim=1)) / p.mean(dim=1).clamp_min(1e-6)
              for p in grid_profile(image, period)]
    return (scores[0] + scores[1]) / 2


def grid_loss(image: torch.Tensor, period: int = 8) -> torch.Tensor:
    """Differentiable lattice penalty for training: the variance of the phase profiles divided by
    their squared mean (scale-free), averaged over images and directions. It is zero when every
    phase of the ``period``-pixel lattice has the same mean step, whatever the image's content, so
    it removes the decoder's grid without smoothing the picture (unlike total variation)."""
    total = image.new_zeros((), dtype=torch.float32)
    for p in grid_profile(image, period):
        total = total + (p.var(dim=1, unbiased=False) / p.mean(dim=1).pow(2).clamp_min(1e-8)).mean()
    return total / 2


def _luma(image: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB (or ``(N, 1, H, W)``) -> ``(N, H, W)`` Rec. 601 luminance."""
    image = image.float()
    if image.shape[1] == 1:
        return image[:, 0]
    return 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]


def checker(gray: torch.Tensor) -> torch.Tensor:
    """The 2x2 checker component ``y[i,j] - y[i+1,j] - y[i,j+1] + y[i+1,j+1]`` of ``(N, H, W)``:
    what a 2-pixel diagonal hatch is made of, and nearly nothing else (a straight edge or a
    smooth ramp cancels in it)."""
    return gray[:, :-1, :-1] - gray[:, 1:, :-1] - gray[:, :-1, 1:] + gray[:, 1:, 1:]


def _hatch_ratio(gray: torch.Tensor) -> torch.Tensor:
    d = checker(gray)
    g = ((gray[:, :, 1:] - gray[:, :, :-1]).abs().mean(dim=(1, 2))
         + (gray[:, 1:, :] - gray[:, :-1, :]).abs().mean(dim=(1, 2)))
    return d.pow(2).mean(dim=(1, 2)).sqrt() / g.clamp_min(1e-6)


def hatch_score(image: torch.Tensor) -> torch.Tensor:
    """How much of an image's detail is a 2-pixel diagonal hatch, per image: RMS of the 2x2
    checker component of its 8-bit luminance over its mean absolute gradient (``|dx| + |dy|``).
    Photographs score about 0.8, paintings 0.9, the VGG AdaIN decoder's outputs 0.5; a decoder
    that paints a fine cross-hatch over flat areas 1 and more. ``image`` in [0, 1]."""
    if min(image.shape[-2:]) < 2:
        raise ValueError("image side under 2 pixels: no hatch score")
    gray = (image.float().clamp(0, 1) * 255).round()
    return _hatch_ratio(_luma(gray))


def hatch_loss(image: torch.Tensor, target: float = 0.5) -> torch.Tensor:
    """Differentiable hatch penalty for training: how far each image's hatch ratio (as
    :func:`hatch_score`, on unquantized luminance) is above ``target``, averaged. Zero for an
    image as clean as the VGG decoder's; it takes the checker out of flat areas without
    smoothing edges or larger strokes (a ramp or an edge has almost no checker component).

    The ratio's denominator (the mean gradient) is held fixed for the gradient: otherwise the
    cheapest way down is to add gradient that has no checker in it, and a network learned to
    draw a stripe of vertical lines along its right edge within 40 steps (edge gradient 3.9x
    the strip inside it) instead of removing the hatch."""
    gray = _luma(image) * 255
    rms = checker(gray).pow(2).mean(dim=(1, 2)).sqrt()
    g = ((gray[:, :, 1:] - gray[:, :, :-1]).abs().mean(dim=(1, 2))
         + (gray[:, 1:, :] - gray[:, :-1, :]).abs().mean(dim=(1, 2)))
    return torch.relu(rms / g.detach().clamp_min(1e-6) - target).mean()


def shift_consistency_loss(shifted_output: torch.Tensor, output: torch.Tensor,
                           dy: int, dx: int, margin: int = 8) -> torch.Tensor:
    """Equivariance penalty (Wang et al. 2020's compound regularization, with true motion):
    ``shifted_output`` is the network's output for the input cropped ``dy, dx`` pixels further
    on, so the ideal is ``output[..., dy:, dx:]``. MSE over their overlap less ``margin`` pixels
    at each edge (padding sees different borders), over the variance of ``output`` (scale-free)."""
    h = min(shifted_output.shape[-2], output.shape[-2] - dy) - 2 * margin
    w = min(shifted_output.shape[-1], output.shape[-1] - dx) - 2 * margin
    if h < 1 or w < 1:
        raise ValueError("crops too small for the shift-consistency term")
    a = shifted_output[..., margin: margin + h, margin: margin + w].float()
    b = output[..., dy + margin: dy + margin + h, dx + margin: dx + margin + w].float()
    return F.mse_loss(a, b) / output.detach().float().var().clamp_min(1e-6)


def color_loss(image: torch.Tensor, target: torch.Tensor, block: int = 4) -> torch.Tensor:
    """L1 between the local mean colors (``block`` x ``block`` pixel means) of two images.

    A per-pixel L1 is dominated by texture that a small network cannot copy, so a flat patch of a
    wrong hue (dark green where the target is near-black blue) costs it less than an average
    pixel does; means over small blocks drop the texture and keep exactly that error."""
    pool = torch.nn.functional.avg_pool2d
    return (pool(image, block, ceil_mode=True) - pool(target, block, ceil_mode=True)).abs().mean()


_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian_loss(image: torch.Tensor, target: torch.Tensor, pool: int = 2) -> torch.Tensor:
    """Structure loss of Li et al. 2017 ("Laplacian-Steered Neural Style Transfer"): squared
    difference of the Laplacians of the two images' luminance after ``pool`` x ``pool`` average
    pooling, normalized by the target batch's mean squared Laplacian. It keeps the photo's edges
    and fine structure, which features at relu4_1 (the AdaIN content loss) see only coarsely;
    the color and texture stay free for the style."""
    def lap(x: torch.Tensor) -> torch.Tensor:
        gray = x.float().mean(1, keepdim=True)
        if pool > 1:
            gray = torch.nn.functional.avg_pool2d(gray, pool)
        kernel = _LAPLACIAN.to(gray.device).view(1, 1, 3, 3)
        return torch.nn.functional.conv2d(gray, kernel)

    a, b = lap(image), lap(target)
    # Normalized by the batch's mean target energy, not each image's: a flat crop (sky) has
    # almost none, and dividing by it would let one such crop dominate the loss.
    return (a - b).pow(2).mean() / b.pow(2).mean().clamp_min(1e-6)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation (mean absolute difference of neighbouring pixels), for smooth outputs."""
    dh = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    dw = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return dh + dw


def normalize_layer_weights(layers: Sequence[str],
                            weights: Sequence[float] | None = None) -> dict[str, float]:
    """Per-layer weights that sum to 1 (equal by default)."""
    if weights is None:
        weights = [1.0] * len(layers)
    total = float(sum(weights))
    return {name: float(w) / total for name, w in zip(layers, weights)}
