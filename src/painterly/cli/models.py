"""``painterly models``: list installed fast models, the AdaIN decoder and the built-in styles;
install a trained fast model."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list installed models; install a trained fast model",
                       description="List the fast models that --model NAME can name (shipped with "
                                   "painterly and in $PAINTERLY_HOME/models), and the AdaIN decoder. "
                                   "--install copies a trained model into the user folder.")
    p.add_argument("--install", metavar="FILE.safetensors", default=None,
                   help="copy this trained fast model (and its .json) into the user folder")
    p.add_argument("--name", default=None,
                   help="name to install it under (default: the file's name, or its run folder's "
                        "name for RUN/model.safetensors)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def run(args: argparse.Namespace) -> int:
    from ..errors import PainterlyError
    from ..models import (
        TRAIN_HINT,
        adain_decoder_status,
        adain_lite_status,
        install_model,
        list_models,
        user_models_dir,
    )

    if args.name is not None and args.install is None:
        raise PainterlyError("--name only applies with --install FILE")
    if args.install is not None:
        info = install_model(args.install, args.name)
        print(f"installed '{info.name}' ({', '.join(info.style_names)}) -> {info.path}")
        print(f"use it with: painterly stylize PHOTO --method fast --model {info.name} -o OUT.png")
        return 0
    from ..image import BUILTIN_STYLES, builtin_artworks

    models = list_models()
    decoder, has_decoder = adain_decoder_status()
    lite, has_lite = adain_lite_status()
    artworks = builtin_artworks()
    if args.json:
        print(json.dumps({"fast": [m.to_dict() for m in models], "user_folder": str(user_models_dir()),
                          "adain_decoder": {"path": str(decoder), "installed": has_decoder},
                          "adain_lite": {"path": str(lite), "installed": has_lite},
                          "builtin_styles": [{"name": n, **artworks.get(n, {"source": "scikit-image"})}
                                             for n in BUILTIN_STYLES]},
                         indent=2))
        return 0
    print("fast models (painterly stylize PHOTO --method fast --model NAME):")
    if not models:
        print(f"  none installed; {TRAIN_HINT}")
    else:
        rows = [("NAME", "SOURCE", "WIDTH", "SIZE", "STYLES")]
        for m in models:
            styles = ", ".join(m.style_names) if m.error is None else f"UNUSABLE: {m.error}"
            rows.append((m.name, m.source, str(m.width or "?"), _size(m.size_bytes), styles))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print(f"user folder: {user_models_dir()} (set PAINTERLY_HOME to move it)")
    state = "installed" if has_decoder else "not installed (pass --decoder FILE to --method adain)"
    print(f"adain decoder (--network vgg): {state}: {decoder}")
    state = "installed" if has_lite else "not installed (train one: painterly train adain --network lite)"
    print(f"adain lite network (--network lite, real time on a CPU): {state}: {lite}")
    print("built-in styles (--style builtin:NAME, any method; a fast model's styles by NAME):")
    for n in BUILTIN_STYLES:
        a = artworks.get(n)
        print(f"  {n:22s} " + (f"{a['artist']}, {a['title']} ({a['year']})" if a else "scikit-image"))
    return 0
