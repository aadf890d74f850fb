"""The encoder caches of AdaIN training (training/cache.py), the folded decoder, warm starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import train_config
from PIL import Image

from painterly.adain.model import Decoder, save_decoder
from painterly.cli import main
from painterly.errors import PainterlyError
from painterly.fast.model import TransformerNet, save_model
from painterly.training import AdaINConfig, Trainer
from painterly.training.adain import AdaINObjective
from painterly.training.cache import ContentFeatureCache, StyleStatsBank, cached_batches
from painterly.training.checkpoint import load_checkpoint
from painterly.training.config import FastConfig, TrainConfig, from_dict
from painterly.training.data import resize_short, scan_folder, to_tensor

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    small = rng.random((h // 8 + 1, w // 8 + 1, 3))
    return Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache_data")
    rng = np.random.default_rng(1)
    (root / "content").mkdir()
    (root / "style").mkdir()
    for i, (h, w) in enumerate(((48, 64), (64, 48), (56, 56))):
        _image(rng, h, w).save(root / "content" / f"c{i}.png")
    for i in range(2):
        _image(rng, 48, 48).save(root / "style" / f"s{i}.png")
    return root


def _cfg(data, out, **kw) -> TrainConfig:
    """The shared tiny training config (helpers.py) at this dataset's resize and seed."""
    return train_config(data, out, **{"resize": 48, "seed": 5, **kw})


def test_content_cache_cuts_aligned_crops_of_the_whole_photo(data, encoder):
    paths = scan_folder(data / "content", "content")
    cache = ContentFeatureCache(paths, 48, 32, 0, encoder, torch.device("cpu"), budget_mb=64)
    feats = cache.get(0)
    assert feats.shape == (512, 4, 4) and feats.dtype == torch.float32
    assert cache.misses == 1 and len(cache.features) == 1
    again = ContentFeatureCache(paths, 48, 32, 0, encoder, torch.device("cpu"), budget_mb=64)
    assert torch.equal(again.get(0), feats)  # a function of (seed, position)
    # The crop's features are a window of the whole photo's relu4_1 (float16-stored).
    index = cache.stream.file_index(0)
    whole = encoder(to_tensor(resize_short(Image.open(paths[index]).convert("RGB"), 48))[None])[0]
    windows = [whole[:, y:y + 4, x:x + 4]
               for y in range(whole.shape[1] - 3) for x in range(whole.shape[2] - 3)]
    assert min(float((w - feats).abs().max()) for w in windows) < 1e-2 * float(whole.abs().max())
    assert cache.fill() == 3 and cache.hits >= 1


def test_content_cache_over_budget_encodes_the_crop(data, encoder):
    paths = scan_folder(data / "content", "content")
    cache = ContentFeatureCache(paths, 48, 32, 0, encoder, torch.device("cpu"), budget_mb=0.001)
    feats = cache.get(3)
    assert feats.shape == (512, 4, 4) and not cache.features  # nothing kept


def test_style_bank_matches_encoding_the_augmented_crop(data, encoder):
    paths = scan_folder(data / "style", "style")
    bank = StyleStatsBank(paths, 48, 32, 1, encoder, torch.device("cpu"), bank=3)
    stats = bank.get(7)
    assert set(stats) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1"}
    assert stats["relu4_1"][0].shape == (512, 1, 1)
    assert bank.get(7) is stats and bank.hits == 1
    # An entry is the statistics of one augmented crop, the same however the bank was filled.
    key = next(iter(bank.stats))
    other = StyleStatsBank(paths, 48, 32, 1, encoder, torch.device("cpu"), bank=3)
    assert other.fill() == 6
    for k, (m, s) in bank.stats[key].items():
        assert torch.allclose(other.stats[key][k][0], m) and torch.allclose(other.stats[key][k][1], s)


def test_cached_batches_follow_the_sampler_positions(data, encoder):
    content_paths = scan_folder(data / "content", "content")
    style_paths = scan_folder(data / "style", "style")

    def make():
        c = ContentFeatureCache(content_paths, 48, 32, 0, encoder, torch.device("cpu"), 64)
        s = StyleStatsBank(style_paths, 48, 32, 1, encoder, torch.device("cpu"), 4)
        return c, s

    single = cached_batches(*make(), batch_size=4, start=2)
    r0 = cached_batches(*make(), batch_size=2, rank=0, world_size=2, start=2)
    r1 = cached_batches(*make(), batch_size=2, rank=1, world_size=2, start=2)
    a, b, c = next(single), next(r0), next(r1)
    assert torch.equal(a["content_features"], torch.cat([b["content_features"], c["content_features"]]))
    assert torch.equal(a["style_stats"]["relu2_1"][1],
                       torch.cat([b["style_stats"]["relu2_1"][1], c["style_stats"]["relu2_1"][1]]))


def test_cached_training_resumes_exactly_and_learns(data, encoder, tmp_path):
    acfg = AdaINConfig(style_bank=4, content_cache_mb=64, grid_weight=1.0)

    def trainer(out, resume=False, **kw):
        cfg = _cfg(data, out, **kw)
        return Trainer(cfg, acfg, AdaINObjective(acfg, cfg, encoder=encoder), resume=resume)

    trainer(tmp_path / "a", iterations=4).run()
    trainer(tmp_path / "b", iterations=2).run()
    trainer(tmp_path / "b", iterations=4, resume=True).run()
    a, b = (load_checkpoint(tmp_path / n / "checkpoint.pt") for n in ("a", "b"))
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert "grid" in (tmp_path / "a" / "losses.csv").read_text().splitlines()[0]


def test_folded_training_decoder_is_the_same_function():
    torch.manual_seed(0)
    dec = Decoder()
    x = torch.randn(2, 512, 4, 5) * 400
    dec.eval()
    plain = dec(x)
    dec.train()
    folded = dec(x)
    assert torch.allclose(plain, folded, atol=1e-5 * float(plain.abs().max()))
    folded.square().mean().backward()  # gradients reach the 3x3 kernels
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.parameters())


def test_legacy_configs_resume_with_the_uncached_path():
    old = from_dict(AdaINConfig, {"style_weight": 3.0, "warmup_recon": 300})
    assert (old.style_bank, old.content_cache_mb, old.grid_weight) == (0, 0.0, 0.0)
    assert from_dict(AdaINConfig, {}).style_bank == AdaINConfig().style_bank
    with pytest.raises(PainterlyError, match="both"):
        AdaINConfig(style_bank=0, content_cache_mb=10).check()


def test_init_warm_starts_adain_and_refuses_a_mismatch(data, encoder, tmp_path, capsys):
    torch.manual_seed(1)
    start = Decoder()
    save_decoder(start, str(tmp_path / "start.safetensors"), half=False)
    cfg = _cfg(data, tmp_path / "run", init=str(tmp_path / "start.safetensors"), iterations=1)
    acfg = AdaINConfig()
    tr = Trainer(cfg, acfg, AdaINObjective(acfg, cfg, encoder=encoder))
    tr.setup()
    for k, v in start.state_dict().items():
        assert torch.equal(tr.net.state_dict()[k], v), k
    assert not tr.optimizer.state  # a fresh optimizer
    tr.logger.close()
    # A decoder of another padding, a fast network, a missing file: one-line errors.
    save_decoder(Decoder(padding="zeros"), str(tmp_path / "zeros.safetensors"))
    save_model(TransformerNet(2, 8, 1), str(tmp_path / "fast.safetensors"), ["a", "b"])
    base = ["train", "adain", "--content-dir", str(data / "content"), "--style-dir", str(data / "style"),
            "--iterations", "1", "--batch-size", "2", "--resize", "48", "--crop", "32", "--workers", "0",
            "--no-progress", "--no-tensorboard"]
    for i, (init, message) in enumerate(((tmp_path / "zeros.safetensors", "padding"),
                                         (tmp_path / "fast.safetensors", "decoder"),
                                         (tmp_path / "missing.safetensors", "not found"))):
        assert main(base + ["--out", str(tmp_path / f"bad{i}"), "--init", str(init)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and len(err.strip().splitlines()) == 1


def test_init_warm_starts_fast_with_another_crop(data, tmp_path, capsys):
    from painterly.training.fast import FastObjective

    styles = [str(data / "style" / "s0.png"), str(data / "style" / "s1.png")]
    net = TransformerNet(2, 8, 1)
    save_model(net, str(tmp_path / "init.safetensors"), ["s0", "s1"])
    train = TrainConfig(method="fast", content_dir=str(data / "content"), out=str(tmp_path / "f"),
                        crop=40, resize=48, init=str(tmp_path / "init.safetensors"))
    obj = FastObjective(FastConfig(styles=styles, width=8, n_residual=1, style_layers=["relu1_2"]), train)
    built = obj.build(torch.device("cpu"))
    obj.load_init(built, train.init)
    for k, v in net.state_dict().items():
        assert torch.equal(built.state_dict()[k], v), k
    wide = FastObjective(FastConfig(styles=styles, width=16, n_residual=1, style_layers=["relu1_2"]), train)
    with pytest.raises(PainterlyError, match="width 8"):
        wide.load_init(wide.build(torch.device("cpu")), train.init)

