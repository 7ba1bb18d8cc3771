"""The pre-commit hooks run what scripts/test runs: the same checks, the same arguments."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.helpers.repository import ROOT


def _script_checks() -> list[str]:
    """Each `"$py" -m ...` command of scripts/test, arguments as written ("$@" dropped)."""
    commands = []
    for line in (ROOT / "scripts" / "test").read_text().splitlines():
        if match := re.fullmatch(r'"\$py" -m (.+)', line.strip()):
            commands.append(match.group(1).replace(' "$@"', ""))
    return commands


def _hooks() -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_every_check_of_scripts_test_is_a_hook_and_no_other() -> None:
    checks = _script_checks()
    assert "pytest" in checks and "mypy" in checks  # the parse found the commands
    prefix = ".venv/bin/python -m "
    entries = [hook["entry"] for hook in _hooks()]
    assert all(entry.startswith(prefix) for entry in entries), entries
    assert [entry.removeprefix(prefix) for entry in entries] == checks


def test_hooks_check_the_whole_tree_not_the_staged_files() -> None:
    # As scripts/test does: mypy and ruff over a subset would miss what a change breaks
    # elsewhere.
    assert all(hook["pass_filenames"] is False for hook in _hooks())
