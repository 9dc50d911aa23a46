"""Output redirected to a file or a pipe (`status > file`, CI logs) keeps every id whole: off a terminal the
tables are as wide as their rows. Naive: rich laid them out in 80 columns and cut `subnet-…/rtb-…` and
`vpc-…` mid-token, so `grep vpc-0abc… file` found nothing."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, SandboxResets, held_empty_sandbox, run_cli, user_environment

from eksprivate.sandbox import SandboxServer

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


@pytest.fixture(scope="module")
def built_config(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cluster for the tests below, which only read it (status, plan, verify): built once, the sandbox
    held (not emptied) while they run."""
    folder = tmp_path_factory.mktemp("redirected")
    config = folder / "cluster.toml"
    config.write_text(f'name = "t-{uuid.uuid4().hex[:10]}"\nper_az = false\n')
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        with pytest.MonkeyPatch.context() as env:
            user_environment(env, sandbox_server.url, folder)
            up = run_cli("up", "--config", str(config))
        assert up.exit_code == 0, up.stderr
        yield config


@pytest.fixture
def made(built_config: Path, cli: Callable[..., CliResult],
         monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    monkeypatch.setenv("COLUMNS", "80")  # what a narrow terminal exports; the file is still not a terminal
    monkeypatch.chdir(built_config.parent)  # where its state/ is

    def run(*args: str) -> CliResult:
        result = cli(*args, "--config", str(built_config))
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


# -- plain progress: each thing once --------------------------------------------------------------------

PLAIN_LIMIT = 60  # lines of the default `up` (issue 21: 75 before, each phase said twice)


def test_default_up_says_each_thing_once_in_at_most_60_lines(
        cli: Callable[..., CliResult], cluster_name: str, aws_env: Path, stand_in: SandboxServer) -> None:
    """The default configuration (three AZs, a node group per AZ): no `cluster: CREATING` beside `cluster:
    CREATING: EKS takes ~9 min`, no `ACTIVE` before `created`, no line per endpoint (naive: 16 for seven
    endpoints)."""
    stand_in.configure(time_scale=0.002)  # slow enough that every wait is seen polling
    result = cli("up", "--name", cluster_name)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= PLAIN_LIMIT, f"{len(lines)} lines:\n{result.stderr}"
    said = [line.split("] ", 1)[1] for line in lines if line.startswith("[")]
    bare = [line for line in said if line.split(": ", 1)[1] in ("CREATING", "ACTIVE")]
    assert not bare, said
    assert not [line for line in said if re.match(r"endpoints: (\S+: )?vpce-\S+ (pending|available)$", line)], said
    endpoint_lines = [line for line in said if line.startswith("endpoints: ")]
    assert len(endpoint_lines) <= 3, endpoint_lines  # creating, waiting (ids and states), created
