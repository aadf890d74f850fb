"""Style augmentation: RandomStyle as a transform (tensors, PIL, batches, DataLoader workers)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from conftest import make_image
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from painterly.augment import RandomStyle
from painterly.errors import PainterlyError


@pytest.fixture(scope="module")
def styles() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[::6] = (250, 40, 10)
    return [np.asarray(Image.fromarray(noise).resize((48, 48), Image.Resampling.NEAREST)), stripes]


def _image(seed: int = 1, w: int = 40, h: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.asarray(make_image(w, h, seed=seed)).copy()).permute(2, 0, 1).float() / 255


def test_tensor_keeps_shape_dtype_and_repaints(styles):
    aug = RandomStyle(styles, alpha=1.0, p=1.0, seed=0, precision="fp32")
    x = _image()
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert (y - x).abs().mean() > 0.02 and 0 <= float(y.min()) and float(y.max()) <= 1
    u8 = (x * 255).round().to(torch.uint8)
    out = aug(u8)
    assert out.dtype == torch.uint8 and out.shape == u8.shape
    gray = x.mean(0, keepdim=True)
    assert aug(gray).shape == (1, 32, 40)
    # alpha 0 keeps the content's features: the decoder's reconstruction, closer to the input than alpha 1
    recon = RandomStyle(styles, alpha=0.0, p=1.0, seed=0, precision="fp32")(x)
    assert (recon - x).abs().mean() < (y - x).abs().mean()


def test_p_and_batches_draw_per_image(styles):
    x = torch.stack([_image(s) for s in range(8)])
    assert torch.equal(RandomStyle(styles, p=0.0)(x), x)  # never stylized: returned untouched
    aug = RandomStyle(styles, alpha=(0.3, 1.0), p=0.5, seed=3, precision="fp32")
    coin, index, strength = RandomStyle(styles, alpha=(0.3, 1.0), p=0.5, seed=3).draw(8)
    y = aug(x)
    changed = (y - x).flatten(1).abs().amax(1) > 0
    assert torch.equal(changed, coin) and 0 < int(coin.sum()) < 8  # the seed's draws, image by image
    assert bool(((strength >= 0.3) & (strength <= 1.0)).all()) and set(index.tolist()) <= {0, 1}
    # Each image's own draw: stylizing it alone with the same draw gives the same picture.
    k = int(torch.nonzero(coin)[0])
    alone = aug._stylize(x[k: k + 1], index[k: k + 1], strength[k: k + 1], torch.device("cpu"))
    assert (alone[0] - y[k]).abs().max() < 1e-4


def test_reproducible_under_a_seed_and_under_torch_manual_seed(styles):
    x = torch.stack([_image(s) for s in range(6)])
    a = RandomStyle(styles, p=0.5, seed=11, precision="fp32")
    b = RandomStyle(styles, p=0.5, seed=11, precision="fp32")
    c = RandomStyle(styles, p=0.5, seed=12, precision="fp32")
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb) and not torch.equal(ya, yc)
    glob = RandomStyle(styles, p=0.5, precision="fp32")  # torch's generator, as torchvision's transforms
    torch.manual_seed(4)
    first = glob(x)
    torch.manual_seed(4)
    assert torch.equal(glob(x), first)


def test_pil_in_pil_out(styles):
    aug = RandomStyle(styles, p=1.0, seed=1)
    img = make_image(40, 30, seed=2)
    out = aug(img)
    assert isinstance(out, Image.Image) and out.size == img.size and out.mode == "RGB"
    rgba = img.convert("RGBA")
    rgba.putalpha(128)
    out = aug(rgba)
    assert out.mode == "RGBA" and out.getchannel("A").getextrema() == (128, 128)
    assert aug(img.convert("L")).mode == "L"


class _Images(Dataset):
    """Six images through ``transform``; with ``strengths`` the item is the strength it drew instead."""

    def __init__(self, transform: RandomStyle, strengths: bool = False) -> None:
        self.transform = transform
        self.strengths = strengths

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform.draw(1)[2] if self.strengths else self.transform(_image(i))


def test_dataloader_workers_are_reproducible_and_differ(styles):
    aug = RandomStyle(styles, p=1.0, alpha=(0.2, 1.0), seed=5, precision="fp32").precompute()
    assert len(pickle.dumps(aug)) < 200_000  # what a worker receives: no networks, cached statistics

    def run(strengths: bool = False) -> torch.Tensor:
        return torch.cat(list(DataLoader(_Images(aug, strengths), batch_size=3, num_workers=2)))

    first, second = run(), run()
    assert first.shape == (6, 3, 32, 40) and torch.equal(first, second)
    # Worker 0 loads items 0-2 and worker 1 items 3-5: each is reseeded, so their draws differ.
    drawn = run(strengths=True)
    assert not torch.equal(drawn[:3], drawn[3:]) and torch.equal(drawn, run(strengths=True))


def test_bad_arguments_are_one_line_errors(styles, tmp_path):
    (tmp_path / "empty").mkdir()
    for kwargs, message in (({"alpha": (0.5, 0.2)}, "low <= high"), ({"alpha": 2}, "low <= high"),
                            ({"alpha": "x"}, "alpha must be"), ({"p": 1.5}, "probability"),
                            ({"style_size": 4}, "style_size"), ({"precision": "fp8"}, "unknown precision"),
                            ({"decoder": str(tmp_path / "no.safetensors")}, "decoder file not found")):
        with pytest.raises(PainterlyError, match=message):
            RandomStyle(styles, **kwargs)
    with pytest.raises(PainterlyError, match="no style images"):
        RandomStyle(str(tmp_path / "empty"))
    aug = RandomStyle(styles, p=1.0)
    with pytest.raises(PainterlyError, match="before Normalize"):
        aug((_image() - 0.5) / 0.25)
    with pytest.raises(PainterlyError, match="1 or 3 channels"):
        aug(torch.rand(4, 16, 16))
    with pytest.raises(PainterlyError, match="at least 16 px"):
        aug(torch.rand(3, 15, 16))
    with pytest.raises(PainterlyError, match="PIL image or a tensor"):
        aug(np.zeros((16, 16, 3)))


def _torchvision_v2():
    """torchvision's v2 transforms, or a skip: it is optional, and a build that does not match the
    installed torch fails at import with a RuntimeError rather than an ImportError."""
    try:
        from torchvision.transforms import v2
    except Exception as exc:  # noqa: BLE001 - ImportError, or RuntimeError from a mismatched build
        if os.environ.get("PAINTERLY_REQUIRE_TORCHVISION"):  # .ci/run's torchvision environment
            raise
        pytest.skip(f"torchvision is not usable here: {type(exc).__name__}: {str(exc)[:80]}")
    return v2


def test_composes_with_torchvision_v2(styles):
    v2 = _torchvision_v2()

    def pipeline(seed: int):
        return v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.ToDtype(torch.float32, scale=True),
                           RandomStyle(styles, p=1.0, seed=seed, precision="fp32"),
                           v2.Normalize([0.5] * 3, [0.25] * 3)])

    x = (_image() * 255).round().to(torch.uint8)
    y = pipeline(1)(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.equal(y, pipeline(1)(x)) and not torch.equal(y, pipeline(2)(x))
    img = v2.ToImage()(make_image(40, 32, seed=3))
    out = v2.Compose([v2.ToDtype(torch.float32, scale=True), RandomStyle(styles, p=1.0, seed=0)])(img)
    assert type(out) is type(img) and out.shape == img.shape


# ---------------------------------------------------------------------------------------------
# Bad input: one-line PainterlyError, from the arguments or the shape, before any work (#20)

def test_an_empty_styles_name_is_refused_not_the_current_folder():
    with pytest.raises(PainterlyError, match="empty name"):
        RandomStyle("")
    with pytest.raises(PainterlyError, match="empty name"):
        RandomStyle(["  "])


@pytest.mark.parametrize("device, words", [("cuda", "no CUDA GPU"), ("bogus", "unknown device")])
def test_a_device_that_is_not_there_is_refused_at_construction(device, words):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(PainterlyError, match=words):
        RandomStyle("builtin:udnie", device=device)


@pytest.mark.parametrize("make, words", [
    (lambda: Image.new("RGB", (8, 20)), "at least 16 px"),  # a padding RuntimeError before
    (lambda: torch.empty(1, 3, 32, 32, device="meta"), "meta tensor"),
    (lambda: torch.zeros(3, 8000, 8000, dtype=torch.uint8), "64.0 megapixels"),
    (lambda: Image.new("RGB", (8000, 8000)), "over RandomStyle's max_pixels"),
    (lambda: torch.zeros(4, 3, 2100, 2100), "4 images of 2100x2100"),
])
def test_images_it_cannot_take_are_refused_from_their_size(make, words, monkeypatch):
    aug = RandomStyle("builtin:udnie", p=1.0, style_size=32)

    def no_work(*args, **kwargs):
        raise AssertionError("the networks were built for an image that should be refused")

    monkeypatch.setattr(aug, "_networks", no_work)
    with pytest.raises(PainterlyError, match=words):
        aug(make())


def test_an_empty_batch_comes_back_and_max_pixels_is_the_callers():
    aug = RandomStyle("builtin:udnie", p=1.0, style_size=32, max_pixels=300)
    empty = torch.rand(0, 3, 32, 32)
    assert aug(empty) is empty
    with pytest.raises(PainterlyError, match="max_pixels"):
        aug(torch.rand(3, 18, 18))
    with pytest.raises(PainterlyError, match="max_pixels must be"):
        RandomStyle("builtin:udnie", max_pixels=0)


def test_a_truncated_image_is_a_painterly_error(tmp_path):
    """A half-written PNG opened lazily by PIL fails when RandomStyle decodes it: one clear error,
    not a raw OSError."""
    import io

    import numpy as np

    from painterly.augment import RandomStyle

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((96, 96, 3)) * 255).astype("uint8")).save(buf, "PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    aug = RandomStyle("builtin:udnie", p=1.0, network="lite", style_size=64, seed=0)
    with pytest.raises(PainterlyError, match="image could not be read .*truncated"):
        aug(Image.open(tmp_path / "t.png"))
