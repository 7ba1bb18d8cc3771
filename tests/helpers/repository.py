"""The repository's root folder, for tests that read its files (docs, configs, scripts)."""

from __future__ import annotations

from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
