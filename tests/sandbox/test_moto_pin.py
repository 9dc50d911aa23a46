"""The installed moto is the one the sandbox was written against (an upgrade is its own commit)."""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

from eksprivate.sandbox.moto_pin import MOTO_VERSION

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_moto_is_the_one_the_sandbox_patches() -> None:
    assert version("moto") == MOTO_VERSION


def test_pyproject_and_the_constraints_pin_that_same_moto() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    for extra in ("sandbox", "dev"):
        assert f"moto[server]=={MOTO_VERSION}" in extras[extra], extra
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(rf"^moto=={re.escape(MOTO_VERSION)}$", constraints, re.MULTILINE)
