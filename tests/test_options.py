"""The option schema (painterly.options, painterly.schema): each option is declared once, and the
front ends (``painterly stylize``'s flags, the HTTP server's fields, sweep files, the ONNX backend)
accept exactly the declared options and check their values by the same rules."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from painterly import api, options
from painterly.cli import build_parser
from painterly.errors import PainterlyError
from painterly.onnx_backend import SUPPORTED_OPTIONS
from painterly.options import (
    STYLE_WEIGHTS,
    AdaINOptions,
    FastOptions,
    GatysOptions,
    option_names,
    options_from,
    parse,
    shared_options,
)
from painterly.schema import Option, OptionError
from painterly.sweep import run_sweep, spec_from_dict

#: ``painterly stylize`` arguments that are not method options.
NOT_METHOD_OPTIONS = {"help", "content", "style", "output", "overwrite", "max_megapixels", "backend",
                      "onnx_model", "method", "style_weights", "ray"}


def _stylize_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["stylize"]


def _server_parsers() -> dict:
    pytest.importorskip("fastapi")
    from painterly.serve.parsing import OPTION_PARSERS

    return OPTION_PARSERS


def _cli(argv: list[str], capsys) -> tuple[argparse.Namespace | None, str]:
    try:
        return _stylize_parser().parse_args(["c.png", "-o", "o.png", *argv]), ""
    except SystemExit:
        return None, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Every front end takes exactly the declared options


def test_cli_flags_are_the_declared_options():
    dests = {a.dest for a in _stylize_parser()._actions}
    assert dests - NOT_METHOD_OPTIONS == {o.name for o, _ in shared_options() if o.cli}
    for opt, _ in shared_options():
        if opt.cli:
            assert opt.help, f"{opt.flag} has no help text"


def test_a_new_method_gets_its_own_flag_group(monkeypatch):
    """A method added to METHOD_OPTIONS with an option of its own gets a flag in its own group
    (no table of group titles to extend)."""
    from dataclasses import dataclass

    from painterly.cli.stylize import add_method_options
    from painterly.schema import MethodOptions, option

    @dataclass
    class ToyOptions(MethodOptions):
        method = "toy"
        toy_strength: float = option(0.5, kind="float", minimum=0.0, help="how much toy")

    monkeypatch.setitem(options.METHOD_OPTIONS, "toy", ToyOptions)
    options.shared_options.cache_clear()
    try:
        parser = argparse.ArgumentParser()
        add_method_options(parser)
    finally:
        options.shared_options.cache_clear()
    group = next(g for g in parser._action_groups if g.title == "toy")
    assert [a.option_strings for a in group._group_actions] == [["--toy-strength"]]
    assert parser.parse_args(["--method", "toy", "--toy-strength", "2"]).toy_strength == 2.0


def test_server_fields_are_the_declared_http_options():
    parsers = _server_parsers()
    assert set(parsers) == {"style_weights"} | {o.name for o, _ in shared_options() if o.http}
    from painterly.serve.openapi import STYLIZE_OPENAPI
    from painterly.serve.parsing import ADAIN_OPTIONS, IMAGE_FIELDS

    assert set(ADAIN_OPTIONS) == {"style_weights"} | {o.name for o in options.options_of(AdaINOptions)
                                                      if o.http}
    for body in STYLIZE_OPENAPI["requestBody"]["content"].values():
        assert set(body["schema"]["properties"]) - set(IMAGE_FIELDS) == set(parsers)


def test_sweep_keys_are_the_gatys_options():
    base = {"content": "builtin:chelsea", "style": "builtin:retina"}
    for name in option_names("gatys"):
        if name in ("log_dir", "save_every", "progress"):  # the sweep writes its own records
            with pytest.raises(PainterlyError, match="cannot be set"):
                spec_from_dict({**base, name: 1})
        else:
            spec_from_dict({**base, "grid": {name: [None]}})
    for name in ("alpha", "model", "tile"):
        with pytest.raises(PainterlyError, match="unknown setting"):
            spec_from_dict({**base, name: 1})


def test_onnx_options_are_declared_adain_or_fast_options():
    declared = {o.name for o, methods in shared_options() if o.onnx and {"adain", "fast"} & set(methods)}
    assert set(SUPPORTED_OPTIONS) == declared
    assert set(SUPPORTED_OPTIONS) <= set(option_names("adain")) | set(option_names("fast"))


def test_methods_and_choices_agree_with_the_implementations():
    from painterly import color, features
    from painterly.adain import networks
    from painterly.gatys import optimizer

    assert tuple(options.METHOD_OPTIONS) == tuple(api.METHODS)
    assert options.OPTIMIZERS == optimizer.OPTIMIZERS == tuple(optimizer.DEFAULT_STEPS) == tuple(
        optimizer.DEFAULT_LR)
    assert options.BACKBONES == features.BACKBONES and options.POOLINGS == features.POOLINGS
    assert set(features.DEFAULT_LAYERS) == set(options.BACKBONES)
    assert options.PRESERVE_COLOR_MODES == color.PRESERVE_COLOR_MODES
    assert options.ADAIN_PRECISIONS == networks.PRECISIONS


def test_declarations_need_no_torch():
    """The CLI's parser and the ONNX backend (deployed without PyTorch) import them."""
    code = ("import sys, painterly.options, painterly.schema, painterly.onnx_backend, "
            "painterly.cli.stylize; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# One rule per option, wherever the value comes from


@pytest.mark.parametrize("method, name, bad, good, want", [
    ("gatys", "lr", "0", "0.5", 0.5),  # the CLI took --lr 0 (only gatys refused it)
    ("gatys", "style_scale", "0", "2", 2.0),
    ("gatys", "style_weight", "-1", "2", 2.0),
    ("gatys", "steps", "0", "3", 3),
    ("gatys", "steps", "2.5", "3.0", 3),
    ("gatys", "seed", str(10**30), "-3", -3),  # the server took no negative seed
    ("gatys", "optimizer", "newton", "Adam", "adam"),
    ("gatys", "content_layers", "conv4_2;x", "conv4_2, conv5_2", ["conv4_2", "conv5_2"]),
    ("gatys", "style_layer_weights", "1,-2", "1, 2", [1.0, 2.0]),
    ("adain", "alpha", "1.5", "0.25", 0.25),  # the CLI took any --alpha (nan too)
    ("adain", "alpha", "nan", "1", 1.0),
    ("adain", "size", "0", "64", 64),
    ("adain", "style_size", "abc", "48", 48),
    ("adain", "preserve_color", "sepia", "luminance", "luminance"),
])
def test_library_cli_server_and_sweep_apply_the_same_rule(method, name, bad, good, want, capsys, tmp_path):
    with pytest.raises(OptionError) as lib:
        parse(method, {name: bad})
    assert getattr(parse(method, {name: good}), name) == want
    message = str(lib.value)
    # the CLI: the same rule, as argparse's one-line error
    args, err = _cli([f"--{name.replace('_', '-')}", bad], capsys)
    assert args is None and lib.value.reason in err
    args, _ = _cli([f"--{name.replace('_', '-')}", good], capsys)
    assert getattr(args, name) == want
    # the server: the same message
    if name in _server_parsers():
        with pytest.raises(OptionError) as server:
            _server_parsers()[name](bad)
        assert str(server.value) == message
        assert _server_parsers()[name](good) == want
    # a sweep file: refused before any run
    if method == "gatys":
        spec = spec_from_dict({"content": "builtin:chelsea", "style": "builtin:retina", name: bad})
        with pytest.raises(OptionError):
            run_sweep(spec, tmp_path / "o", log=None)
        assert not (tmp_path / "o").exists()


def test_style_weights_are_one_rule_too(capsys):
    assert STYLE_WEIGHTS.check("1, 3") == [1.0, 3.0]
    with pytest.raises(OptionError, match="style_weights"):
        STYLE_WEIGHTS.check("1,-3")
    args, err = _cli(["--style-weights", "1,x"], capsys)
    assert args is None and "argument --style-weights: must be comma-separated numbers" in err
    with pytest.raises(OptionError, match="style_weights"):
        _server_parsers()["style_weights"]("1,x")


def test_style_weights_near_the_float_limit_blend_instead_of_vanishing():
    """1e308 twice sums to inf in float64: normalized naively, every weight became 0 and the
    AdaIN and fast paths painted a near-flat image with exit 0."""
    from painterly.options import check_style_weights

    assert check_style_weights([1e308, 1e308], 2) == [0.5, 0.5]
    assert check_style_weights([1e308, 0.0, 3e307], 3) == pytest.approx([1 / 1.3, 0.0, 0.3 / 1.3])
    with pytest.raises(PainterlyError, match="must not all be zero"):
        check_style_weights([0.0, 0.0], 2)
    with pytest.raises(PainterlyError, match="finite"):
        check_style_weights([float("inf"), 1.0], 2)


def test_server_limits_are_tighter_and_declared():
    parsers = _server_parsers()
    assert parse("gatys", {"style_scale": 5}).style_scale == 5.0
    with pytest.raises(OptionError, match=r"style_scale must be in \[0.01, 4\] on this server"):
        parsers["style_scale"]("5")
    with pytest.raises(OptionError, match="scales must be at most 4 on this server"):
        parsers["scales"]("5")
    with pytest.raises(OptionError, match="init must be one of content, noise, style on this server"):
        parsers["init"]("/etc/passwd")
    for name in ("../../x", "a/b", "..", ""):
        if name:
            with pytest.raises(OptionError, match="no paths"):
                parsers["model"](name)
    assert parsers["model"]("candy_v2.1") == "candy_v2.1"


def test_a_shared_flag_takes_what_any_method_takes(capsys):
    """--size 8 is fine for adain; gatys, whose smallest side is 16, refuses it itself."""
    args, _ = _cli(["--size", "8"], capsys)
    assert args.size == 8 and _server_parsers()["size"]("8") == 8
    assert parse("adain", {"size": 8}).size == 8
    with pytest.raises(OptionError, match="size must be at least 16, got 8"):
        parse("gatys", {"size": 8})
    args, _ = _cli(["--precision", "fp16"], capsys)  # adain's networks run fp16; gatys's do not
    assert args.precision == "fp16" and parse("adain", {"precision": "fp16"}).precision == "fp16"
    with pytest.raises(OptionError, match="unknown precision 'fp16'"):
        parse("gatys", {"precision": "fp16"})


# ---------------------------------------------------------------------------------------------
# Values and options objects


def test_values_from_python_text_and_json_alike():
    size = Option("size", "int", minimum=1)
    assert size.check("64") == size.check(64) == size.check(64.0) == size.check(" 64.0 ") == 64
    assert size.check(None) is None and size.check("  ") is None
    for bad, words in ((True, "whole number"), ("1e400", "whole number"), ("9" * 41, "41 characters"),
                       (2**63, r"at most 2\*\*63 - 1"), ("x", "whole number")):
        with pytest.raises(OptionError, match=words):
            size.check(bad)
    weight = Option("w", "float", minimum=0.0, default=3.0)
    assert weight.check("") == 3.0 and weight.check("0") == 0.0
    for bad in (True, "inf", float("nan"), -1, "x"):
        with pytest.raises(OptionError, match="^w must be a"):
            weight.check(bad)
    mode = Option("preserve_color", "choice", choices=("luminance",), empty=("none",))
    assert mode.check("Luminance") == "luminance" and mode.check("none") is None
    layers = Option("layers", "names")
    assert layers.check(["a1", "b_2"]) == layers.check("a1,b_2") == ["a1", "b_2"]
    with pytest.raises(OptionError):
        layers.check("a-1")
    flag = Option("compile", "flag")
    assert flag.check("yes") is True and flag.check("0") is False and flag.check(1) is True


def test_options_objects_check_themselves():
    assert AdaINOptions(alpha="0.5", size="64").alpha == 0.5
    assert AdaINOptions().style_size == options.DEFAULT_STYLE_SIZE
    with pytest.raises(OptionError, match="alpha"):
        AdaINOptions(alpha=2)
    assert FastOptions(precision="BF16").precision == "bf16"
    assert GatysOptions().steps is None  # the optimizer's default: filled in by gatys.resolve
    with pytest.raises(PainterlyError, match="option.s. steps do not apply to method 'adain'"):
        parse("adain", {"steps": 3, "alpha": None})
    parse("adain", {"steps": None})  # None is "not set", even for an option of another method
    with pytest.raises(PainterlyError, match="unknown method 'picasso'"):
        parse("picasso", {})
    given = AdaINOptions(alpha=0.3)
    assert options_from("adain", given, {}) is given
    with pytest.raises(PainterlyError, match="not both"):
        options_from("adain", given, {"alpha": 0.5})
    with pytest.raises(PainterlyError, match="takes AdaINOptions, not FastOptions"):
        options_from("adain", FastOptions(), {})
