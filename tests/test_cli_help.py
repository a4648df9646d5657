"""Issue 21: every option says what it does and its default; every command is in the README's table."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from main import HelpFormatter, build_parser

REPO = Path(__file__).resolve().parents[1]


def parsers(parser: argparse.ArgumentParser, name: str = "main.py"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from parsers(sub, f"{name} {command}")


def options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield action


def test_every_option_has_a_help_line_that_shows_its_default():
    missing, no_default = [], []
    for name, parser in parsers(build_parser()):
        formatter = HelpFormatter(name)
        for action in options(parser):
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(label)
            has_default = action.default not in (None, False, argparse.SUPPRESS)  # SUPPRESS: set elsewhere
            if action.option_strings and has_default and "(default" not in formatter._get_help_string(action):
                no_default.append(label)
    assert missing == [] and no_default == []


def test_the_defaults_are_in_the_printed_help():
    text = " ".join(dict(parsers(build_parser()))["main.py phantom"].format_help().split())
    assert "--seed SEED random seed" in text and "(default: 0)" in text and "(default: train)" in text


def test_the_top_level_help_is_plain_text():
    text = build_parser().format_help()
    assert "``" not in text and "python main.py" in text


def test_every_command_is_in_the_readme_table():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Command line") : readme.index("## Opening studies")]
    rows = [line for line in section.splitlines() if line.startswith("| `python main.py")]
    named = {re.match(r"\| `python main\.py ([a-z]+(?: [a-z]+)?)", row).group(1) for row in rows}
    commands = {name.removeprefix("main.py ") for name, _ in parsers(build_parser()) if name != "main.py"}
    leaves = {c for c in commands if not any(other.startswith(c + " ") for other in commands)}
    assert {c for c in leaves if c not in named and c.split()[0] not in named} == set()
