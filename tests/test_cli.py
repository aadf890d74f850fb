"""The command line's own mistakes (argument parsing): one line, exit status 2, no usage dump."""

from __future__ import annotations

import pytest

from painterly.cli import main


@pytest.mark.parametrize("argv, words", [
    (["stylize", "x.png", "--size", "abc"], "painterly stylize: argument --size: not a whole number"),
    (["stylize"], "the following arguments are required"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["train", "adain", "--out", "r", "--time-limit", "-1"], "argument --time-limit: must be"),
    (["train"], "painterly train: the following arguments are required: METHOD"),
])
def test_argument_mistakes_are_one_line(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err
    assert "--help)" in err and "usage:" not in err
