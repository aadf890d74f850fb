"""Training options (train_options.py, training/config.py): the checks of TrainConfig and the
objectives' configs, the field names a checkpoint records, the per-network defaults, and the
``--loss-config`` file's keys (each shipped file in docs/loss_configs/ parses)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from painterly.errors import PainterlyError
from painterly.training import AdaINConfig, FastConfig, TrainConfig
from painterly.training.trainer import autocast_context

LOSS_CONFIGS = Path(__file__).resolve().parents[1] / "docs" / "loss_configs"


def test_config_checks():
    with pytest.raises(PainterlyError, match="crop"):
        TrainConfig(content_dir="c", style_dir="s", resize=64, crop=128).check()
    with pytest.raises(PainterlyError, match="multiple of 8"):
        TrainConfig(content_dir="c", style_dir="s", resize=64, crop=36).check()
    with pytest.raises(PainterlyError, match="at least 16"):  # was a padding RuntimeError
        TrainConfig(content_dir="c", style_dir="s", resize=8, crop=8).check()
    with pytest.raises(PainterlyError, match="--style-dir"):
        TrainConfig(content_dir="c").check()
    with pytest.raises(PainterlyError, match="style_distance"):
        AdaINConfig(style_distance="l1").check()
    with pytest.raises(PainterlyError, match="fp16 needs a CUDA"):
        autocast_context(torch.device("cpu"), "fp16")


@pytest.mark.parametrize("field, value, words", [
    ("val_pairs", 0, "val-pairs"),
    ("val_pairs", 10**6, "val-pairs"),
    ("threads", -1, "threads"),
    ("stall_window", -5, "stall-window"),
    ("lr", float("inf"), "finite"),
    ("lr_decay", float("nan"), "finite"),
    ("seed", 2**70, "seed"),
    ("resize", 10**6, "resize"),
])
def test_train_config_numbers_out_of_range(tmp_path, field, value, words):
    cfg = TrainConfig(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu")
    cfg.check()
    setattr(cfg, field, value)
    with pytest.raises(PainterlyError, match=words):
        cfg.check()


def test_train_memory_refused_before_any_work(tmp_path, monkeypatch):
    import painterly.device as device_mod

    monkeypatch.setattr(device_mod, "available_memory", lambda device: 2**30)
    cfg = TrainConfig(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu", batch_size=64,
                      crop=1024, resize=1024)
    with pytest.raises(PainterlyError, match="lower --batch-size or --crop"):
        cfg.check()
    cfg.batch_size, cfg.crop = 2, 64
    cfg.check()


# ---------------------------------------------------------------------------------------------
# The declarations: field names, defaults by network, one rule for every source


#: The fields a checkpoint's config records, as runs saved them: never renamed, so every run
#: resumes (a new field is added at the end of this list, with a LEGACY value if it changes
#: what an old run trained).
SAVED_FIELDS = {
    TrainConfig: ["method", "out", "content_dir", "style_dir", "iterations", "batch_size", "lr", "lr_decay",
                  "resize", "crop", "style_augment", "workers", "seed", "checkpoint_every", "log_every",
                  "val_every", "val_pairs", "amp", "channels_last", "compile", "device", "tensorboard",
                  "progress", "threads", "time_limit", "init", "health_every", "collapse_patience",
                  "collapse_grace", "stall_window"],
    AdaINConfig: ["style_weight", "content_weight", "warmup_recon", "style_loss_reduce", "style_distance",
                  "encoder_padding", "decoder_padding", "grid_weight", "style_bank", "content_cache_mb",
                  "network", "embed_weight", "laplacian_weight", "teacher", "lite_skip",
                  "lite_decoder_widths", "hatch_weight", "shift_weight", "upsample"],
    FastConfig: ["styles", "content_layers", "style_layers", "content_weight", "style_weight", "tv_weight",
                 "width", "n_residual", "luminance", "style_size", "warmup_recon", "teacher",
                 "teacher_style_size", "pixel_weight", "grid_weight", "color_weight", "network", "loss",
                 "laplacian_weight", "gram_weight", "lite_decoder_widths", "hatch_weight", "shift_weight",
                 "upsample"],
}


@pytest.mark.parametrize("cls", list(SAVED_FIELDS))
def test_the_saved_field_names_stay(cls):
    import dataclasses

    from painterly.schema import options_of

    names = [f.name for f in dataclasses.fields(cls)]
    assert names[:len(SAVED_FIELDS[cls])] == SAVED_FIELDS[cls]
    # Every field but TrainConfig.method is a declared option; list defaults are not shared.
    assert {o.name for o in options_of(cls)} == set(names) - {"method"}
    assert cls().__dict__ == cls().__dict__ and all(
        getattr(cls(), n) is not getattr(cls(), n) for n in names if isinstance(getattr(cls(), n), list))


def test_a_config_saved_before_the_declarations_resumes():
    """A checkpoint's config of the last release reads back into the same objects."""
    from painterly.training.config import from_dict, to_dict

    saved = {"style_weight": 6.0, "content_weight": 1.0, "warmup_recon": 0, "style_loss_reduce": "sum",
             "style_distance": "mse", "encoder_padding": "zeros", "decoder_padding": "reflect",
             "grid_weight": 50.0, "style_bank": 64, "content_cache_mb": 4096.0, "network": "lite",
             "embed_weight": 1.0, "laplacian_weight": 0.4, "teacher": "", "lite_skip": "relu3_1",
             "lite_decoder_widths": [32, 32, 64, 128], "hatch_weight": 0.5, "shift_weight": 1.0,
             "upsample": "bilinear"}
    cfg = from_dict(AdaINConfig, saved)
    cfg.check()
    assert to_dict(cfg) == saved


def test_the_defaults_of_each_network_come_from_one_table():
    from painterly.train_options import PRESETS, defaults
    from painterly.training.config import LITE_FAST_DEFAULTS, METHOD_TRAIN_DEFAULTS, default_train_config

    train, obj = defaults("fast", "lite")
    for name, value in PRESETS[("fast", "lite")].items():
        assert getattr(train if hasattr(train, name) else obj, name) == value
    assert train.batch_size == PRESETS[("fast", None)]["batch_size"]  # the method's stay under it
    assert defaults("fast")[1].style_weight == FastConfig().style_weight
    assert METHOD_TRAIN_DEFAULTS["fast"] == PRESETS[("fast", None)] and METHOD_TRAIN_DEFAULTS["adain"] == {}
    assert {**LITE_FAST_DEFAULTS["train"], **LITE_FAST_DEFAULTS["objective"]} == PRESETS[("fast", "lite")]
    assert default_train_config("fast").lr == PRESETS[("fast", None)]["lr"]


def test_the_lite_choices_agree_with_the_network():
    from painterly.adain import lite
    from painterly.train_options import LITE_SKIPS

    assert tuple("" if s == "none" else s for s in LITE_SKIPS) == lite.SKIPS
    cfg = AdaINConfig(network="lite", lite_skip="relu3_1", lite_decoder_widths=[32, 32, 64, 128])
    cfg.check()
    lite.check_skip(cfg.lite_skip), lite.check_widths(cfg.lite_decoder_widths)
    for bad, words in ((dict(lite_decoder_widths=[24, 32]), "is not four positive integers"),
                       (dict(lite_decoder_widths=[0, 32, 64, 128]), "is not four positive integers"),
                       (dict(lite_skip="relu2_1"), "unknown lite skip 'relu2_1'")):
        with pytest.raises(PainterlyError, match=words):
            AdaINConfig(network="lite", **bad).check()


@pytest.mark.parametrize("cls, name, value, words", [
    (AdaINConfig, "grid_weight", -1.0, "must be a finite number >= 0, got -1"),
    (AdaINConfig, "upsample", "cubic", "unknown upsampling 'cubic'"),
    (FastConfig, "teacher_style_size", 10, "must be at least 64, got 10"),
    (FastConfig, "network", "mobile", "unknown fast network 'mobile'"),
    (FastConfig, "style_layers", [], "must be one or more"),
    (TrainConfig, "amp", "fp8", "unknown mixed precision mode 'fp8'"),
    (TrainConfig, "time_limit", -1.0, "must be a finite number >= 0, got -1"),
])
def test_every_field_has_one_rule_wherever_it_is_set(tmp_path, cls, name, value, words):
    """The declared rule refuses the same value in a config object (named as its flag, as
    before), a --loss-config file (named as its key) and a flag (argparse's one-line error)."""
    from painterly.cli import main
    from painterly.train_options import read_loss_config, train_options

    base = {TrainConfig: dict(content_dir=str(tmp_path), style_dir=str(tmp_path), device="cpu"),
            FastConfig: dict(styles=["builtin:udnie"])}.get(cls, {})
    with pytest.raises(PainterlyError, match=words) as exc:
        cls(**{**base, name: value}).check()
    assert name.replace("_", "-") in str(exc.value) or "unknown" in str(exc.value)
    method = "fast" if cls is FastConfig else "adain"
    opt = next(o for o in train_options(method) if o.name == name)
    toml = f"{name} = {value!r}".replace("'", '"') if not isinstance(value, list) else f"{name} = []"
    if not isinstance(value, list):
        (tmp_path / "c.toml").write_text(toml + "\n")
        with pytest.raises(PainterlyError, match=words) as exc:
            read_loss_config(tmp_path / "c.toml", method)
        assert name in str(exc.value)
        with pytest.raises(SystemExit) as exc:
            main(["train", method, "--out", str(tmp_path / "o"), opt.flag, str(value)])
        assert exc.value.code == 2


def test_every_shipped_loss_config_parses():
    """Each file of docs/loss_configs/ is read for its method (adain_*: train adain, the rest
    train fast) and its values are what the file says."""
    import tomllib

    from painterly.train_options import defaults, read_loss_config

    files = sorted(LOSS_CONFIGS.glob("*.toml"))
    assert {f.stem for f in files} >= {"adain_lite_run14", "artworks8_stage8", "own_painting_run2",
                                       "adain_vgg"}
    for path in files:
        method = "adain" if path.stem.startswith("adain") else "fast"
        values = read_loss_config(path, method)
        assert values and values == tomllib.loads(path.read_text()), path.name
        network = "lite" if "lite" in path.stem or method == "fast" else "vgg"  # the runs' networks
        train, obj = defaults(method, network)
        obj.network = network
        if method == "fast":  # as many styles as a per-style list names (artworks8: eight)
            obj.styles = ["builtin:udnie"] * max(1, len(values.get("per_style_weight", [])))
        for name, value in values.items():
            setattr(train if hasattr(train, name) else obj, name, value)
        obj.check()
    run14 = read_loss_config(LOSS_CONFIGS / "adain_lite_run14.toml", "adain")
    assert run14 == {"lite_skip": "relu3_1", "lite_decoder_widths": [32, 32, 64, 128], "upsample": "bilinear",
                     "laplacian_weight": 0.4, "grid_weight": 50, "hatch_weight": 0.5, "shift_weight": 1}


@pytest.mark.parametrize("text, words", [
    ("grid_wieght = 50", "unknown key 'grid_wieght'; did you mean grid_weight?"),
    ("grid-weight = 50", "did you mean grid_weight?"),
    ("gram_weight = 1", "gram_weight is a setting of train fast, not of train adain"),
    ("content_dir = 'photos'", "content_dir is given on the command line (--content-dir)"),
    ('grid_weight = "50"', "grid_weight must be a number, got text '50'"),
    ("grid_weight = true", "grid_weight must be a number, got true"),
    ("iterations = 2.5", "iterations must be a whole number, got a number 2.5"),
    ("lite_decoder_widths = '32,32,64,128'", "lite_decoder_widths must be a list of whole numbers"),
    ("style_augment = 1", "style_augment must be true or false"),
    ("[lite]\nlite_skip = 'relu3_1'", "unknown key 'lite'"),
    ("grid_weight = -1", "grid_weight must be a finite number >= 0, got -1"),
    ("val_pairs = 100", "val_pairs must be between 1 and 64, got 100"),
    ("lite_decoder_widths = [32, 32, 64]", "'32,32,64' is not four positive integers"),
    ("lite_skip = 'relu2_1'", "unknown lite skip 'relu2_1'"),
    ("grid_weight = ", "not valid TOML"),
])
def test_a_bad_loss_config_is_one_line(tmp_path, text, words):
    from painterly.train_options import read_loss_config

    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(PainterlyError) as exc:
        read_loss_config(path, "adain")
    message = str(exc.value)
    assert message.startswith(f"--loss-config {path}: ") and "\n" not in message, message
    assert words in message, message
    with pytest.raises(PainterlyError, match="no such file"):
        read_loss_config(tmp_path / "missing.toml", "adain")
