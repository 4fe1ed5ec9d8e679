"""``iwlz`` builds only the parser of the command it is given: the same parser, for a fraction of the start."""

from __future__ import annotations

import argparse

import pytest

from node import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(action.choices)


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every (sub)command's help text, nested commands included, by its path."""
    out = {}
    for name, sub in _subparsers(parser).items():
        out[name] = sub.format_help()
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):  # noqa: SLF001
            out |= {f"{name} {k}": v for k, v in _helps(sub).items()}
    return out


ALL = _helps(cli.parser())


@pytest.mark.parametrize("command", sorted(_subparsers(cli.parser())))
def test_the_parser_built_for_one_command_is_the_full_parsers_for_it(command: str) -> None:
    alone = _helps(cli.parser(command))
    assert command in alone
    assert alone == {path: text for path, text in ALL.items() if path.split()[0] in _subparsers(cli.parser(command))}
    assert all(ALL[path] == text for path, text in alone.items())


def test_every_command_is_found_from_its_words_and_an_unknown_one_gets_the_full_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli._command(["--json", "record", "get", "HOME"]) == "record"  # noqa: SLF001
    assert cli._command(["-h"]) is None  # noqa: SLF001
    assert sorted(n for g in cli.GROUPS for n in cli._names(g)) == sorted(_subparsers(cli.parser()))  # noqa: SLF001
    with pytest.raises(SystemExit):
        cli.main(["nosuch"])
    assert "invalid choice: 'nosuch' (choose from 'network', " in capsys.readouterr().err
