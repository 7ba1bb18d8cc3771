"""The version lives in `batchsvc.__version__` alone: the installed metadata and the command
line report that value."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import batchsvc


def test_installed_metadata_reads_the_one_version() -> None:
    assert importlib.metadata.version("batchsvc") == batchsvc.__version__


def test_cli_reports_the_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchsvc", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == f"batchsvc {batchsvc.__version__}"
