"""docs/configuration.md documents every config key the code reads, with the code's type and default,
and its full example is a valid config that uses every key."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from eksprivate.config import CONFIG_KEYS, NodeGroupSpec, Settings, build_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
CELL_SPLIT = re.compile(r"(?<!\\)\|")  # `int\|list[str]` is one cell


def documented() -> dict[str, tuple[str, str]]:
    """Rows of the doc's tables whose first cell is a `key`: key → (type, default)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in CELL_SPLIT.split(line.strip())[1:-1]]
        match = re.fullmatch(r"`([a-z_]+)`", cells[0])
        if match is None or len(cells) != 4:
            continue
        assert match[1] not in rows, f"{match[1]} is documented twice"
        rows[match[1]] = (cells[1].replace("\\|", "|"), cells[2])
    return rows


def example() -> str:
    text = DOC.read_text(encoding="utf-8").split("\n## Example", 1)[1]
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None, "the Example section has no ```toml block"
    return block[1]


def code_default(key: str) -> Any:
    """The default the code uses for `key`, as the TOML value that would mean the same."""
    # A Settings field, or a Settings property for a key read into another field (pull_through_credentials).
    source: Any = Settings() if key in Settings.__dataclass_fields__ or hasattr(Settings, key) else NodeGroupSpec()
    value = getattr(source, key)
    if key in ("tags", "labels", "endpoint_policy_files"):
        return dict(value)
    if key == "addons":  # AddonSpecs, written as a table of name = version
        return {a.name: a.version for a in value}
    if isinstance(value, tuple):
        return list(value)
    return value


def test_every_config_key_is_documented() -> None:
    missing = sorted(set(CONFIG_KEYS) - set(documented()))
    assert not missing, f"docs/configuration.md does not document {', '.join(missing)}"


def test_the_doc_names_no_key_the_code_does_not_read() -> None:
    stale = sorted(set(documented()) - set(CONFIG_KEYS))
    assert not stale, f"docs/configuration.md documents unknown keys {', '.join(stale)}"


@pytest.mark.parametrize("key", sorted(CONFIG_KEYS))
def test_documented_type_and_default_match_the_code(key: str) -> None:
    rows = documented()
    if key not in rows:
        pytest.fail(f"{key} is not documented")
    kind, default = rows[key]
    assert kind == CONFIG_KEYS[key], f"{key}: the doc says {kind}, the code reads {CONFIG_KEYS[key]}"
    literal = re.fullmatch(r"`(.*)`", default)
    want = code_default(key) if key != "nodegroups" else None
    if want is None:  # computed or absent: the doc must say in words where it comes from
        assert literal is None and default.startswith("*("), f"{key}: default should be explained, not {default}"
        return
    assert literal is not None, f"{key}: the default should be a TOML literal like `{want!r}`, not {default}"
    assert tomllib.loads(f"v = {literal[1]}")["v"] == want, f"{key}: the doc says {literal[1]}, the code {want!r}"


def test_the_example_is_a_valid_config_using_every_key() -> None:
    values = tomllib.loads(example())
    settings = build_settings(values)  # raises UsageError when invalid
    used = set(values) | {k for group in values.get("nodegroups", []) for k in group}
    assert sorted(set(CONFIG_KEYS) - used) == []
    assert [g.name for g in settings.nodegroups] == ["general", "batch"]
    batch = settings.nodegroups[1]
    assert not batch.per_az and batch.capacity_type == "SPOT" and batch.labels == (("workload", "batch"),)
    assert settings.nodegroups[0].instance_types == ("m6i.large",)  # top-level node keys are defaults


def test_the_check_catches_an_undocumented_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONFIG_KEYS, "brand_new_key", "bool")
    with pytest.raises(AssertionError, match="brand_new_key"):
        test_every_config_key_is_documented()
