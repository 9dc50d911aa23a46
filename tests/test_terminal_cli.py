"""The terminal through the real CLI against the sandbox: plain lines of `up`, `down` and a no-op rerun,
headers, "Next:" hints as the program was invoked, `down`'s "no", `--help`, the closest config key,
`plan`'s details of what it would make, the sandbox's notes, and `kubeconfig` (sandbox file, the
context that was current, the official Kubernetes client's loader).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SandboxResets, held_empty_sandbox, run_cli, user_environment
from faults.helpers import Cli, CliResult

from eksprivate import cli as cli_module
from eksprivate import ui
from eksprivate.sandbox import SandboxServer

REGION = "eu-central-1"
STEPS = 20  # the default config's graph: the steps that make something (4 managed add-ons among them)
ACTIONS = 1  # and the upgrade step, which makes nothing: "ready" on every run
QUIET_WORDS = ("waiting:", "checking")


def ok(result: CliResult) -> CliResult:
    assert result.exception is None, result.exception
    assert result.exit_code == 0, result.stderr
    return result


def progress_lines(stderr: str) -> list[str]:
    """The `[HH:MM:SS] key: text` lines, without their stamp."""
    return [line.split("] ", 1)[1] for line in stderr.splitlines() if re.match(r"^\[\d\d:\d\d:\d\d\] ", line)]


# -- plain lines -----------------------------------------------------------------------------------------

def test_a_step_that_keeps_waiting_repeats_itself_at_most_once_a_minute(
        cli: Cli, cluster_name: str, stand_in: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Time runs 25 s per look at the clock, so the cluster's polls span minutes: its unchanged status is
    said again at most once a minute, never once per poll. The cluster takes 1 s here (2000 s x 0.0005), about
    30 polls, so that a loaded machine's slow start still leaves it many polls to be seen waiting on."""
    stand_in.configure(cluster_create=2000.0)
    ticks = itertools.count()
    monkeypatch.setattr(ui, "_now", lambda: time.monotonic() + 25.0 * next(ticks))
    lines = progress_lines(ok(cli("up", "--name", cluster_name)).stderr)
    span = 25.0 * next(ticks)
    stills: dict[str, int] = {}
    for line in lines:
        key, text = line.split(": ", 1)
        if text.startswith("still "):
            stills[key] = stills.get(key, 0) + 1
    assert stills, "a waiting step never said it still waits:\n" + "\n".join(lines)
    assert all(count <= span / 60 + 1 for count in stills.values()), (stills, span)
    assert len(lines) == len(set(lines))


# -- headers ---------------------------------------------------------------------------------------------

def test_plan_up_and_down_name_cluster_region_and_account_first(cli: Cli, cluster_name: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Before anything else, also with --yes (which asks nothing): cluster, region, account."""
    header = f"cluster {cluster_name} in {REGION}"
    for args in (("plan",), ("up",), ("down", "--yes")):
        first_line = ok(cli(*args, "--name", cluster_name)).stderr.splitlines()[0]
        assert first_line.startswith(f"eksprivate {args[0]}: {header}") and "account 123456789012" in first_line


def test_plan_details_say_what_will_be_made(cli: Cli, cluster_name: str) -> None:
    """Every step `up` would create says what it makes (CIDRs, instance types and sizes, endpoints);
    before, the details of a create were blank."""
    report = json.loads(ok(cli("plan", "--name", cluster_name, "--output", "json")).stdout)
    creates = {s["key"]: s["details"] for s in report["steps"] if s["action"] == "create"}
    assert len(creates) >= STEPS and all(creates.values()), creates
    assert "10.20.0.0/16" in creates["vpc"][0]
    assert any("10.20.0.0/18" in d for d in creates["subnets"])
    assert any("t3.small" in d for d in creates["nodegroup/nodes-a"])
    assert any("min 1 / desired 1 / max 2" in d for d in creates["nodegroup/nodes-a"])
    assert any("ecr.dkr" in d for d in creates["endpoints"])
    text = ok(cli("plan", "--name", cluster_name)).stdout
    assert "t3.small" in text and "10.20.0.0/16" in text


def test_help_shows_no_bool_after_switches(cli: Cli) -> None:
    """`--sandbox <bool>` made users type `--sandbox true`, which fails."""
    for command in (["up"], ["down"], ["plan"], ["status"], ["verify"], ["kubeconfig"], ["tunnel"], ["export"],
                    ["sandbox", "start"], []):
        text = ok(cli(*command, "--help")).stdout
        assert "<bool>" not in text and "<str>" not in text, text
        assert "--help " in text


def test_an_unknown_config_key_suggests_the_closest(cli: Cli, cluster_name: str, aws_env: Path) -> None:
    config = aws_env / "cluster.toml"
    config.write_text('nodegroup = [{ name = "a" }]\n')
    result = cli("up", "--name", cluster_name, "--config", str(config))
    assert result.exit_code == 2 and result.exception is None
    assert result.stderr.strip().splitlines() == [
        "error: unknown config key 'nodegroup', did you mean 'nodegroups'? — see docs/configuration.md for the "
        "keys eksprivate reads"]


# -- the sandbox's notes ---------------------------------------------------------------------------------

def test_starting_the_sandbox_is_said_once(tmp_path: Path) -> None:
    """The first command that needs the sandbox starts it and says so; the next one finds it and is quiet."""
    from eksprivate.sandbox.process import ensure_running, stop

    heard: list[str] = []
    try:
        info = ensure_running(tmp_path, 0.001, on_start=heard.append)
        again = ensure_running(tmp_path, on_start=heard.append)
    finally:
        stop(tmp_path)
    assert again.pid == info.pid
    assert len(heard) == 1 and info.url in heard[0] and "sandbox stop" in heard[0]


def test_state_from_an_earlier_sandbox_is_named_with_how_to_start_clean(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox forgets everything when it stops: a state written before the running sandbox started
    lists ids it never made. Say so (naive code said nothing and `status` showed everything absent)."""
    from eksprivate.sandbox import process
    from eksprivate.state import Ledger
    from eksprivate.target import Options, earlier_sandbox_state

    path = tmp_path / "x-eu-central-1.json"
    ledger = Ledger.open(path, "x", REGION, "123456789012")
    ledger.record("vpc", vpc_id="vpc-0123")
    written = str(ledger.data.get("updated_at"))

    def running(started_at: str) -> Any:
        return process.SandboxInfo(pid=1, port=1, url="http://127.0.0.1:1", time_scale=0.03, started_at=started_at)

    opts = Options(sandbox=True, state_dir=tmp_path)
    monkeypatch.setattr(process, "read_running", lambda _: running("2999-01-01T00:00:00+00:00"))
    said = earlier_sandbox_state(opts, ledger)
    assert said and "earlier sandbox" in said and f"delete {path}" in said and "--state" in said
    monkeypatch.setattr(process, "read_running", lambda _: running(written))
    assert earlier_sandbox_state(opts, ledger) is None  # the same sandbox made it


# -- on one built cluster --------------------------------------------------------------------------------
# The tests below read what one default `up` made, or rerun `up` on it, and change nothing in AWS: they share
# that `up` (each one's own cost ~0.8 CPU s). While they run, the sandbox is held: not emptied between them.

@dataclass
class Built:
    name: str
    folder: Path  # the user's folder: state/ is there
    first: CliResult  # the `up` that made it
    rerun: CliResult  # a second `up` right after it (a no-op)


@pytest.fixture(scope="module")
def built(sandbox_server: SandboxServer, sandbox_resets: SandboxResets,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    folder = tmp_path_factory.mktemp("terminal")
    name = f"t-{uuid.uuid4().hex[:10]}"
    with held_empty_sandbox(sandbox_server, sandbox_resets):
        with pytest.MonkeyPatch.context() as mp:
            user_environment(mp, sandbox_server.url, folder)
            first = run_cli("up", "--name", name)
            rerun = run_cli("up", "--name", name)
        yield Built(name, folder, first, rerun)


@pytest.fixture
def on_built(built: Built, aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> Built:
    """The built cluster, in a test's user environment (`aws_env`) working in the folder that holds its state."""
    monkeypatch.chdir(built.folder)
    return built


def test_up_prints_one_line_per_change_and_a_rerun_one_line_per_step(built: Built) -> None:
    """A default `up` says each step's start, its AWS phases and its end, once each: no poll repeats (the old
    output printed `endpoints: vpce-... pending` on every poll, 141 lines), no `waiting:` lines. A no-op
    rerun prints one `ready` line per step and nothing else."""
    first = ok(built.first)
    lines = progress_lines(first.stderr)
    assert len(lines) == len(set(lines)), "\n".join(lines)
    assert not [line for line in lines if any(word in line for word in QUIET_WORDS)]
    assert sum(line.endswith(": creating") for line in lines) == STEPS
    assert sum(": created: " in line for line in lines) == STEPS
    assert len(lines) <= 3 * STEPS + 12, f"{len(lines)} lines:\n" + "\n".join(lines)

    rerun = ok(built.rerun)
    again = progress_lines(rerun.stderr)
    assert len(again) == STEPS + ACTIONS and all(": ready: " in line for line in again), "\n".join(again)


@pytest.mark.parametrize(("argv0", "orig", "program"), [
    ("/opt/tools/venv/bin/eksprivate", None, "/opt/tools/venv/bin/eksprivate"),
    ("/work/x/eksprivate/__main__.py", [".venv/bin/python", "-m", "eksprivate", "up"],
     ".venv/bin/python -m eksprivate"),
    # Another program's `python -m` (here pytest, run serially): eksprivate is embedded, not invoked.
    ("/work/x/.venv/lib/python3.11/site-packages/pytest/__main__.py", [".venv/bin/python", "-m", "pytest"],
     "eksprivate"),
])
def test_next_hints_are_spelled_the_way_the_program_was_invoked(
        cli: Cli, on_built: Built, monkeypatch: pytest.MonkeyPatch, argv0: str, orig: list[str] | None,
        program: str) -> None:
    """Copy-pasteable: `eksprivate status` fails for someone who ran `.venv/bin/eksprivate up`."""
    monkeypatch.setattr(sys, "argv", [argv0, "up"])
    if orig is not None:
        monkeypatch.setattr(sys, "orig_argv", orig, raising=False)
    name = on_built.name
    result = ok(cli("up", "--name", name))
    assert f"Next: `{program} status --name {name}`, `{program} verify --name {name}`" \
        in " ".join(result.stderr.split())


def test_answering_no_to_down_is_a_cancel_not_an_error(cli: Cli, on_built: Built, stand_in: SandboxServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """"n" at the question: "cancelled; nothing deleted", exit 0, nothing deleted. Before: a usage error
    (exit 2, the code reserved for bad input)."""
    monkeypatch.setattr(cli_module, "_can_ask", lambda: True)
    mark = len(stand_in.calls())
    result = cli("down", "--name", on_built.name, input="n\n")
    assert result.exit_code == 0 and result.exception is None, result.stderr
    assert "cancelled; nothing deleted" in result.stderr and "error" not in result.stderr
    assert not [c for c in stand_in.calls()[mark:] if c.operation.startswith("Delete")]


# -- kubeconfig ------------------------------------------------------------------------------------------

def test_kubeconfig_says_it_became_current_and_names_the_one_before(cli: Cli, on_built: Built, aws_env: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cluster_name = on_built.name
    kubeconfig = aws_env / "kube" / "config"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod-admin",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example"}}],
        "users": [{"name": "admin", "user": {"token": "t"}}],
        "contexts": [{"name": "prod-admin", "context": {"cluster": "prod", "user": "admin"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    text = " ".join(ok(cli("kubeconfig", "--name", cluster_name)).stderr.split())
    arn = f"arn:aws:eks:{REGION}:123456789012:cluster/{cluster_name}"
    assert f"context {arn} written to {kubeconfig}" in text
    assert "it is now the current context; it was prod-admin (back: kubectl config use-context prod-admin)" in text
    assert yaml.safe_load(kubeconfig.read_text())["current-context"] == arn


def test_kubeconfig_with_the_sandbox_never_writes_the_users_file_and_loads_in_the_kubernetes_client(
        cli: Cli, on_built: Built, aws_env: Path, stand_in: SandboxServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--sandbox: a file under state/ and the `export KUBECONFIG=...` to use it; $KUBECONFIG and
    ~/.kube/config stay untouched. The file passes the official Kubernetes Python client's loader."""
    from eksprivate.sandbox import process

    cluster_name = on_built.name
    monkeypatch.setattr(process, "ensure_running", lambda *a, **k: process.SandboxInfo(
        pid=os.getpid(), port=0, url=stand_in.url, time_scale=0.0005, started_at="2000-01-01T00:00:00+00:00"))
    home, users = aws_env / "home", aws_env / "users-kubeconfig"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(users))
    result = ok(cli("kubeconfig", "--sandbox", "--name", cluster_name))
    written = on_built.folder / "state" / f"kubeconfig-{cluster_name}.yaml"
    assert written.exists() and not users.exists() and not (home / ".kube").exists()
    assert f"export KUBECONFIG={written.resolve()}" in " ".join(result.stderr.split())
    assert stat.S_IMODE(written.stat().st_mode) == 0o600

    kubernetes = pytest.importorskip("kubernetes")
    bin_dir = aws_env / "bin"
    bin_dir.mkdir()
    fake_aws = bin_dir / "aws"  # what `aws eks get-token` prints, so the exec plugin can run here
    fake_aws.write_text("#!/bin/sh\necho '" + json.dumps({
        "kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1",
        "status": {"token": "k8s-aws-v1.sandbox", "expirationTimestamp": "2099-01-01T00:00:00Z"}}) + "'\n")
    fake_aws.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(written), client_configuration=configuration)
    endpoint = yaml.safe_load(written.read_text())["clusters"][0]["cluster"]["server"]
    assert configuration.host == endpoint
    assert "Bearer k8s-aws-v1.sandbox" in configuration.api_key.values()
