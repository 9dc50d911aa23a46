"""Output redirected to a file or a pipe (`status > file`, CI logs) keeps every id whole: off a terminal the
tables are as wide as their rows. Naive: rich laid them out in 80 columns and cut `subnet-…/rtb-…` and
`vpc-…` mid-token, so `grep vpc-0abc… file` found nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksprivate.sandbox import SandboxServer
from tests.conftest import CliResult

AWS_ID = re.compile(r"\b(?:vpc|subnet|rtb|sg|vpce|lt|fl|eni)-[0-9a-f]{8,17}\b")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def ids_in(document: Any) -> set[str]:
    return {match for text in strings(document) for match in AWS_ID.findall(text)}


@pytest.fixture
def made(cli: Callable[..., CliResult], cluster_name: str, aws_env: Path, stand_in: SandboxServer,
         monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    monkeypatch.setenv("COLUMNS", "80")  # what a narrow terminal exports; the file is still not a terminal
    config = aws_env / "cluster.toml"
    config.write_text(f'name = "{cluster_name}"\nper_az = false\n')
    assert cli("up", "--config", str(config)).exit_code == 0

    def run(*args: str) -> CliResult:
        result = cli(*args, "--config", str(config))
        assert result.exit_code == 0, result.stderr
        return result

    return run


def test_every_id_of_status_json_is_whole_in_status_redirected(made: Callable[..., CliResult]) -> None:
    ids = ids_in(json.loads(made("status", "--output", "json").stdout))
    assert any(i.startswith("subnet-") for i in ids) and any(i.startswith("vpce-") for i in ids), ids
    text = made("status").stdout  # stdout captured: not a terminal, as `status > file`
    missing = sorted(i for i in ids if i not in text)
    assert not missing, f"cut or missing in `status > file`: {missing}\n{text}"


def test_plan_and_verify_keep_their_ids_whole_too(made: Callable[..., CliResult]) -> None:
    for command in ("plan", "verify"):
        ids = ids_in(json.loads(made(command, "--output", "json").stdout))
        assert ids, command
        text = made(command).stdout
        assert not sorted(i for i in ids if i not in text), (command, text)
