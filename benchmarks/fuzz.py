"""Mutation fuzzer for the places painterly reads bytes it did not make: the image loader
(``painterly.image.load_image``, and the server's ``decode_upload``), the HTTP request parser
(``painterly.serve.app.parse_request``: multipart, JSON with base64, raw image bodies), the
ONNX backend's sidecar reader (``painterly.onnx_backend.read_config``: ``NAME.onnx.json``) and
file names (target ``names``: not UTF-8, very long, with line breaks or NUL, through
``check_output``, ``save_image`` and ``load_image``, each message one printable line) and
request fields (target ``fields``: one option of a JSON request set to a huge string or an
extreme number -- 1e308, -0.0, subnormals, 10^40 -- and checked into the method's options; its
error may not echo the value back at length), and tiny images (target ``tiny``: 1x1, 1xN and
other small sizes through every method: an error, or a result of the same size).

A plain loop, no extra dependency: small valid seeds (images in every format, requests in every
encoding, exported sidecars) are mutated (bit flips, byte runs, boundary integers, splices,
truncation; sidecars also field by field with random JSON: lists, objects, wrong types, huge and
non-finite numbers, paths) and fed in.
``PainterlyError`` (and the server's own ``HTTPError``/``BodyTooLarge``) is the expected answer to
garbage; anything else is a bug, reported with the input saved under ``--crashes``. An input that
takes over ``--hang-seconds`` is counted as a hang. Prints inputs tried, bugs, hangs and peak
memory; exits 1 when a bug was found (so CI fails), else 0.

    python benchmarks/fuzz.py --seconds 60                 # what CI runs
    python benchmarks/fuzz.py --seconds 600 --target image --seed 3
    python benchmarks/fuzz.py --seconds 60 --target sidecar
    python benchmarks/fuzz.py --seconds 60 --target names
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import io
import json
import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from painterly.errors import PainterlyError
from painterly.image import load_image, pixel_limit

#: While fuzzing, images over this are refused (as the server does), so a mutated header that
#: claims a huge size cannot make one input take gigabytes.
FUZZ_PIXELS = 2048 * 2048
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]


class Hang(Exception):
    """Raised by the alarm when one input runs too long."""


def image_seeds() -> list[bytes]:
    """Small valid images in every format the loader and server take."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    out = []
    for fmt, mode in (("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"), ("PNG", "I;16"), ("JPEG", "RGB"),
                      ("JPEG", "CMYK"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB"),
                      ("PPM", "RGB")):
        img = Image.fromarray(arr)
        img = img.convert("L").convert("I;16") if mode == "I;16" else img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out.append(buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", exif=exif.tobytes())
    out.append(buf.getvalue())
    return out


def request_seeds(images: list[bytes]) -> list[tuple[str, bytes, bytes]]:
    """(content type, query string, body) of valid requests in each encoding."""
    png = images[0]
    b64 = base64.b64encode(png).decode()
    boundary = "fuzzBOUNDARY"

    def part(name: str, data: bytes, filename: str | None = None) -> bytes:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        ctype = "Content-Type: image/png\r\n" if filename else ""
        return f"--{boundary}\r\nContent-Disposition: {disp}\r\n{ctype}\r\n".encode() + data + b"\r\n"

    multipart = (part("content", png, "c.png") + part("style", png, "s.png") + part("alpha", b"0.5")
                 + part("method", b"gatys") + part("steps", b"3") + f"--{boundary}--\r\n".encode())
    return [
        (f"multipart/form-data; boundary={boundary}", b"", multipart),
        ("application/json", b"", json.dumps({"content": b64, "style": [b64], "alpha": 0.7,
                                              "method": "adain", "size": 64}).encode()),
        ("application/json", b"", json.dumps({"content": "data:image/png;base64," + b64,
                                              "builtin_style": ["udnie"], "preserve_color": "luminance",
                                              "style_weights": "1"}).encode()),
        ("image/png", b"builtin_style=udnie&alpha=0.3&size=32", png),
        ("application/x-www-form-urlencoded", b"", b"method=fast&model=x"),
    ]


def mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:  # flip a bit
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:  # random byte
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:  # boundary integer, little or big endian
            width = rng.choice((1, 2, 4))
            value = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            b[pos:pos + width] = value.to_bytes(width, rng.choice(("little", "big")))
        elif op == 3 and b:  # delete a run
            del b[pos:pos + rng.randint(1, 32)]
        elif op == 4:  # insert a run
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 5 and b:  # duplicate a chunk
            n = rng.randint(1, min(256, len(b)))
            start = rng.randrange(len(b) - n + 1)
            b[pos:pos] = b[start:start + n]
        elif op == 6 and pool:  # splice with another seed
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            b = b[:pos] + bytearray(other[cut:])
        elif op == 7:  # truncate
            b = b[:pos]
    return bytes(b)


def sidecar_seeds() -> list[bytes]:
    """``NAME.onnx.json`` as ``painterly export onnx`` writes them (adain and fast)."""
    adain = {"format": "painterly-onnx", "format_version": 1, "kind": "adain", "opset": 17,
             "model": "m.onnx", "style_model": "m_style.onnx", "channels": 512, "network": "vgg",
             "inputs": {"content": "N,3,H,W", "style_mean": "N|1,512,1,1"}, "multiple": 8,
             "min_side": 16, "decoder_config": {"kind": "adain-decoder", "padding": "reflect"}}
    fast = {"format": "painterly-onnx", "format_version": 1, "kind": "fast", "opset": 17,
            "model": "m.onnx", "n_styles": 2, "style_names": ["ink", "oil"], "multiple": 4,
            "min_side": 8}
    return [json.dumps(c, indent=2, sort_keys=True).encode() for c in (adain, fast)]


def random_json(rng: random.Random, depth: int = 0) -> object:
    """A random JSON value: the types and extremes a hand-edited or hostile sidecar may hold."""
    pick = rng.randrange(12 if depth < 3 else 9)
    if pick == 0:
        return rng.choice((None, True, False))
    if pick == 1:
        return rng.choice((0, 1, -1, 2, 7, 512, 4096, 65537, 2**31, 2**63, -2**63, 10**18, 10**300))
    if pick == 2:
        return rng.choice((0.5, -0.0, 1e308, -1e308, 1e-320, float("inf"), float("-inf"), float("nan")))
    if pick == 3:
        return rng.choice(("", "adain", "fast", "lite", "m.onnx", "../m.onnx", "/etc/passwd", "a/b",
                           "a\\b", "x\u0000y", ".", "..", "\u00e9" * 40, "m_style.onnx" * 30))
    if pick == 4:
        return "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(12)))
    if pick == 5:
        return rng.randrange(-10**6, 10**6)
    if pick == 6:
        return 10 ** rng.randrange(1, 400) * rng.choice((1, -1))
    if pick == 7:
        return rng.uniform(-1e6, 1e6)
    if pick == 8:
        return [rng.choice(("ink", "oil", 1, None))] * rng.randrange(4)
    if pick in (9, 10):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice(("kind", "n_styles", "x", "")): random_json(rng, depth + 1)
            for _ in range(rng.randrange(4))}


#: Fields of a sidecar the structured mutator overwrites (those the backend reads, and others).
SIDECAR_FIELDS = ("kind", "n_styles", "min_side", "multiple", "channels", "style_model", "model",
                  "style_names", "format_version", "opset", "inputs", "network", "extra")


def mutate_sidecar(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """Half the time a field (or the whole document) replaced by random JSON, nested ``[``/``{``
    runs or a huge body; else :func:`mutate`'s byte edits."""
    roll = rng.random()
    if roll < 0.5:
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        if isinstance(doc, dict) and rng.random() < 0.85:
            for _ in range(rng.randint(1, 3)):
                key = rng.choice(SIDECAR_FIELDS)
                if rng.random() < 0.1:
                    doc.pop(key, None)
                else:
                    doc[key] = random_json(rng)
        else:
            doc = random_json(rng)
        return json.dumps(doc).encode()  # NaN and Infinity as Python's json writes them
    if roll < 0.55:
        opener = rng.choice((b"[", b"{\"a\":"))
        return opener * rng.choice((10, 1000, 100_000))
    if roll < 0.57:
        return b'{"kind": "fast", "pad": "' + b"x" * rng.choice((1 << 20, 3 << 20)) + b'"}'
    return mutate(data, rng, pool)


def name_seeds() -> list[bytes]:
    """Output and input file names: plain, nested, near and over the 255-byte name and 4095-byte
    path limits, not UTF-8, with line breaks, controls and a NUL."""
    return [b"out.png", b"sub/dir/out.jpg", b"a" * 250 + b".png", b"a" * 251 + b".png",
            b"\xff\xfe.png", b"caf\xc3\xa9.webp", b"two\nlines.png", b"tab\tand\rreturn.png",
            b"nul\x00.png", b"d/" * 30 + b"x.png", (b"e" * 200 + b"/") * 21 + b"x.png",
            b"\xc3.png", b"no_extension", b".hidden.tiff", b"x.PNG", b"\xed\xa0\x80.png"]


def mutate_name(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """A name made longer (a component or the whole path repeated past the limits), given odd
    bytes (not UTF-8, line breaks, NUL), or :func:`mutate`'s byte edits."""
    roll = rng.random()
    if roll < 0.2:
        head, dot, ext = data.rpartition(b".")
        return (head * rng.randint(2, 40))[:rng.choice((250, 254, 255, 256, 300, 5000))] + dot + ext
    if roll < 0.3:
        return (data.rstrip(b"/") + b"/") * rng.randint(2, 300) + rng.choice(pool)
    if roll < 0.5:
        b = bytearray(data)
        b[rng.randrange(len(b) + 1):0] = rng.choice((b"\n", b"\r\n", b"\x00", b"\xff", b"\x80\x80",
                                                    b"\xe2\x80\xa8", b"\x1b[31m", b"/", b"//", b".."))
        return bytes(b)
    return mutate(data, rng, pool)


#: Targets whose inputs a mutator of their own makes (the rest use :func:`mutate`).
#: "fields" draws its field and value in the run itself: its seeds go in as they are.
MUTATORS = {"sidecar": mutate_sidecar, "names": mutate_name,
            "fields": lambda data, rng, pool: data, "tiny": lambda data, rng, pool: data}


def _request(ctype: str, query: bytes, body: bytes) -> object:
    from starlette.requests import Request

    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/stylize", "query_string": query,
             "headers": [(b"content-type", ctype.encode("latin-1", "replace")),
                         (b"content-length", str(len(body)).encode())]}
    return Request(scope, receive)


def remove_tree(folder: Path) -> None:
    """Delete ``folder`` however deep the fuzzed names nested it (``shutil.rmtree`` recurses once
    per level and stops at Python's recursion limit)."""
    try:
        subprocess.run(["rm", "-rf", "--", str(folder)], check=False, timeout=120)
    except (OSError, subprocess.SubprocessError):
        pass
    shutil.rmtree(folder, ignore_errors=True)


def make_targets() -> dict[str, tuple[Callable[[bytes, random.Random], None], list[bytes], tuple]]:
    """name -> (run one input, seed corpus, exception types that are our own answers)."""
    images = image_seeds()
    targets: dict[str, tuple[Callable, list[bytes], tuple]] = {}

    def run_image(data: bytes, rng: random.Random) -> None:
        load_image(data, draft=rng.choice((None, 8, 64)))

    targets["image"] = (run_image, images, (PainterlyError,))

    from painterly.onnx_backend import read_config  # torch-free; onnxruntime is not needed to read

    folder = Path(tempfile.mkdtemp(prefix="painterly-fuzz-"))
    atexit.register(remove_tree, folder)
    model = folder / "m.onnx"
    model.write_bytes(b"not read by the sidecar reader")
    side = folder / "m.onnx.json"

    def run_sidecar(data: bytes, rng: random.Random) -> None:
        side.write_bytes(data)
        read_config(model)

    targets["sidecar"] = (run_sidecar, sidecar_seeds(), (PainterlyError,))

    from painterly.errors import printable
    from painterly.image import check_output, save_image

    names = folder / "names"
    names.mkdir()
    given = names / "in.png"
    tiny = Image.new("RGB", (2, 2), (9, 8, 7))
    tiny.save(given)
    done = [0]

    def run_names(data: bytes, rng: random.Random) -> None:
        done[0] += 1
        if done[0] % 100 == 0 or not given.is_file():  # afresh now and then, off the hang clock
            left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
            remove_tree(names)
            names.mkdir()
            tiny.save(given)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
        # Kept inside the scratch folder: no absolute path, no "..".
        parts = [p for p in data.split(b"/") if p not in (b"", b".", b"..")] or [b"x"]
        path = names / os.fsdecode(b"/".join(parts))
        try:
            op = rng.randrange(4)
            if op == 0:
                check_output(path, [given], overwrite=rng.random() < 0.5)
            elif op == 1:
                save_image(tiny, path, overwrite=rng.random() < 0.5)
                if tiny.size != load_image(path).size:
                    raise AssertionError(f"{path!r} was written but does not read back")
            elif op == 2:
                load_image(path, draft=rng.choice((None, 8)))
            else:
                check_output(path, [path], overwrite=True)  # an input is never written over
                raise AssertionError(f"{path!r}: an input was accepted as the output")
        except PainterlyError as exc:
            line = printable(str(exc))
            if "\n" in line or "\r" in line or not line.isprintable():
                raise AssertionError(f"the message is not one printable line: {line!r}") from None
            raise
        if given.read_bytes() == b"" or not given.is_file():
            raise AssertionError("the input file was overwritten or lost")

    targets["names"] = (run_names, name_seeds(), (PainterlyError,))
    try:
        from painterly.serve.app import (
            BodyTooLarge,
            HTTPError,
            ServeConfig,
            decode_upload,
            parse_request,
        )
    except ModuleNotFoundError as exc:  # the serve extra is not installed
        print(f"skipping the HTTP targets ({exc.name} is missing)")
        return targets
    ours = (PainterlyError, HTTPError, BodyTooLarge)
    config = ServeConfig(max_pixels=FUZZ_PIXELS)

    def run_upload(data: bytes, rng: random.Random) -> None:
        decode_upload(data, "content", config)

    targets["upload"] = (run_upload, images, ours)
    seeds = request_seeds(images)
    # A request is encoded as "ctype\n query\n body" so one mutator edits all three parts.
    encoded = [c.encode() + b"\n" + q + b"\n" + body for c, q, body in seeds]

    def run_request(data: bytes, rng: random.Random) -> None:
        ctype, _, rest = data.partition(b"\n")
        query, _, body = rest.partition(b"\n")
        asyncio.run(parse_request(_request(ctype.decode("latin-1"), query, body)))

    targets["request"] = (run_request, encoded, ours)

    from painterly.errors import MESSAGE_LIMIT
    from painterly.options import check_style_weights, parse

    def run_fields(data: bytes, rng: random.Random) -> None:
        """One option of a valid JSON request set to an extreme value (huge strings, 1e308,
        -0.0, subnormals, non-finite words), parsed as the server does and checked into the
        method's options: a PainterlyError is the answer, never a crash, and its message
        repeats no more of the value than fits a short line."""
        fields = json.loads(data)
        method = fields.pop("method")
        key = rng.choice(sorted(FIELD_NAMES))
        fields[key] = rng.choice(EXTREME_VALUES)
        if key == "style_weights" and rng.random() < 0.5:
            fields[key] = [rng.choice(EXTREME_VALUES[3:]) for _ in range(2)]
        body = json.dumps({"content": FIELD_IMAGE, "method": method, **fields}).encode()
        try:
            req = asyncio.run(parse_request(_request("application/json", b"", body)))
            opts = dict(req.options)
            weights = opts.pop("style_weights", None)
            check_style_weights(weights, max(1, len(weights or [1])))
            parse(req.method or method, opts)
        except PainterlyError as exc:
            if len(str(exc)) > MESSAGE_LIMIT:
                raise AssertionError(f"a {len(str(exc))}-character message echoes the value: "
                                     f"{str(exc)[:120]!r}...") from None
            raise

    global FIELD_IMAGE
    FIELD_IMAGE = base64.b64encode(images[0]).decode()
    field_seeds = [json.dumps({"method": m}).encode() for m in ("adain", "gatys", "fast")]
    targets["fields"] = (run_fields, field_seeds, ours)
    return targets


def tiny_target() -> tuple[Callable[[bytes, random.Random], None], list[bytes], tuple]:
    """Target ``tiny``: 1x1, 1xN, Nx1 and other small images through every method (the lite
    AdaIN network, artworks8, a one-step gatys): a PainterlyError, or a result of the input's
    size that is not flat where the input is not."""
    from painterly.api import make_stylizer

    stylizers = {
        "adain": make_stylizer("adain", ["builtin:udnie"], network="lite", style_size=64),
        "fast": make_stylizer("fast", None, None, model="artworks8"),
        "gatys": make_stylizer("gatys", ["builtin:udnie"], steps=1, size=48),  # its own size
    }
    sides = (1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 300)

    def run_tiny(data: bytes, rng: random.Random) -> None:
        method = data.decode()
        w, h = rng.choice(sides), rng.choice(sides)
        img = Image.fromarray(np.random.default_rng(w * 1000 + h).integers(0, 255, (h, w, 3), np.uint8))
        out = stylizers[method](img)
        want = img.size
        if method == "gatys":  # paints at its size on the long side
            scale = 48 / max(w, h)
            want = (max(1, round(w * scale)), max(1, round(h * scale)))
        if abs(out.size[0] - want[0]) > 1 or abs(out.size[1] - want[1]) > 1:
            raise AssertionError(f"{method}: a {w}x{h} image came back {out.size[0]}x{out.size[1]}")
        if min(w, h) >= 9 and float(np.asarray(out, np.float32).std()) < 1.0:
            raise AssertionError(f"{method}: a {w}x{h} image came back flat")

    return run_tiny, [b"adain", b"fast", b"gatys"], (PainterlyError,)


#: With every target on, at most one input in this many goes to "tiny" (each runs networks).
TINY_SHARE = 40
#: What the "fields" target sets an option to: huge strings, extreme and odd numbers.
EXTREME_VALUES = ["x" * 1_000_000, "'" * 100_000, "\u0000" * 1000, 1e308, -1e308, -0.0, 5e-324,
                  2.2250738585072014e-308, "nan", "inf", "-inf", "1e309", 10**40, -(10**40), "",
                  [], {}, True, None, "0x10", " 1 ", "1,2,3"]
#: The options a request may set (the server's parsers), method and images aside.
FIELD_NAMES = ("alpha", "content_layers", "content_weight", "init", "lr", "model", "network",
               "optimizer", "pooling", "preserve_color", "scales", "seed", "size", "steps",
               "style_layer_weights", "style_layers", "style_loss", "style_scale", "style_size",
               "style_weight", "style_weights", "tv_weight", "builtin_style")
#: A valid 16x16 PNG content for the "fields" target (base64).
FIELD_IMAGE = ""


def peak_mb() -> float:
    """Peak resident memory of this process (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="total time (default 60)")
    p.add_argument("--target", choices=("all", "image", "upload", "request", "fields", "sidecar",
                                        "names", "tiny"),
                   default="all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hang-seconds", type=float, default=5.0, help="one input over this is a hang")
    p.add_argument("--crashes", default="fuzz-crashes", help="folder for inputs that found a bug")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    targets = make_targets()
    targets["tiny"] = tiny_target()
    names = list(targets) if args.target == "all" else [args.target]
    tried = {n: 0 for n in names}
    bugs: dict[str, int] = {}
    hangs = 0
    slowest = 0.0

    def alarm(signum: int, frame: object) -> None:
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # multipart parser warnings about every mutated header
    t_end = time.monotonic() + args.seconds
    with pixel_limit(FUZZ_PIXELS):
        while time.monotonic() < t_end:
            name = names[sum(tried.values()) % len(names)]
            if name == "tiny" and len(names) > 1 and tried["tiny"] * TINY_SHARE > sum(tried.values()):
                name = names[0]  # a tiny input runs networks: one in TINY_SHARE, not a fair turn
            run, corpus, ours = targets[name]
            mutator = MUTATORS.get(name, mutate)
            data = mutator(rng.choice(corpus), rng, corpus) if rng.random() < 0.97 else rng.choice(corpus)
            tried[name] += 1
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, args.hang_seconds)
            try:
                run(data, rng)
            except Hang:
                hangs += 1
                print(f"hang: {name} input of {len(data)} bytes took over {args.hang_seconds:g} s")
            except ours:
                pass
            except Exception as exc:  # a bug: anything but our own error types
                key = f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
                if key not in bugs:
                    folder = Path(args.crashes)
                    folder.mkdir(parents=True, exist_ok=True)
                    saved = folder / f"{name}-{len(bugs)}.bin"
                    saved.write_bytes(data)
                    print(f"BUG {key} (input saved to {saved})")
                    traceback.print_exc(limit=6)
                bugs[key] = bugs.get(key, 0) + 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                slowest = max(slowest, time.monotonic() - t0)
    total = sum(tried.values())
    print(f"fuzz: {total} inputs in {args.seconds:g} s ({', '.join(f'{n} {k}' for n, k in tried.items())}); "
          f"{sum(bugs.values())} non-painterly exception(s) ({len(bugs)} distinct), {hangs} hang(s), "
          f"slowest input {slowest:.2f} s, peak memory {peak_mb():.0f} MB")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
