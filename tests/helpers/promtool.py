"""Prometheus' own checker, `promtool` (Debian package: prometheus)."""

from __future__ import annotations

import os
import shutil

import pytest


def promtool() -> str:
    """Its path. .ci/run installs it, so in CI a missing promtool is a broken install and the
    test fails; elsewhere the test is skipped."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (Debian package: prometheus)")
        pytest.skip("promtool is not installed")
    return found
