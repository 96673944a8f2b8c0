"""Configuration dataclasses as command-line flags: one source of defaults and checks."""

import argparse
from dataclasses import dataclass, fields

import pytest

from digitrec.cli import build_parser, main
from digitrec.options import add_flags, from_flags, option
from digitrec.reader import ReaderConfig
from digitrec.rejection import VerifierConfig
from digitrec.serve.config import ServeConfig


@dataclass(frozen=True)
class Example:
    size: int = option(3, "how many")
    body_bytes: int = option(2 * 2**20, "largest body", flag="body-mb", unit="MB", scale=2**20)
    paths: tuple[str, ...] = option((), "a folder (repeatable)", metavar="DIR")
    fast: bool = option(False, "go fast")
    hidden: int = 7  # not a flag


def parse(argv: list[str], unset: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, Example, unset=unset)
    return parser.parse_args(argv)


def test_flags_default_to_their_fields_and_convert_units():
    assert Example(**from_flags(parse([]), Example)) == Example()
    given = from_flags(parse(["--size", "5", "--body-mb", "0.5", "--paths", "a", "--paths", "b",
                              "--fast"]), Example)
    assert given == {"size": 5, "body_bytes": 2**19, "paths": ("a", "b"), "fast": True}
    assert not hasattr(parse([]), "hidden")


def test_unset_flags_are_left_out_for_the_caller_to_fill():
    assert from_flags(parse([], unset="default: the recipe"), Example) == {}
    assert from_flags(parse(["--no-fast"], unset="x"), Example) == {"fast": False}


def test_help_says_each_default_in_the_flags_units():
    parser = argparse.ArgumentParser()
    add_flags(parser, Example)
    text = " ".join(parser.format_help().split())
    assert "how many (default 3)" in text and "largest body (default 2 MB)" in text
    assert "--paths DIR" in text and "go fast (default off)" in text


@pytest.mark.parametrize(("command", "config"), [("serve", ServeConfig),
                                                 ("train-reader", ReaderConfig),
                                                 ("train-verifier", VerifierConfig)])
def test_command_defaults_are_the_configs_own(command: str, config: type):
    args = build_parser().parse_args([command])
    assert config(**from_flags(args, config)) == config()
    assert {f.name for f in fields(config) if "help" in f.metadata} <= set(vars(args))


@pytest.mark.parametrize("argv", [["serve", "--max-batch", "0"], ["serve", "--timeout", "0"],
                                  ["train-reader", "--holdout", "1"],
                                  ["train-verifier", "--photos", "-1"]])
def test_bad_options_are_one_clear_error(argv: list[str], capsys: pytest.CaptureFixture):
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(f"digitrec {argv[0]}: error: ")
