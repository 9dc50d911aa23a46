"""One run at a time per state file: a second run refuses and names the holder; a killed run's lock does
not block the next one (flock dies with its process)."""

from __future__ import annotations

import signal
import socket

from eksprivate.sandbox import SandboxServer

from .conftest import FAST, SLOW
from .helpers import REGION, Children, Cli, mutating_calls


def test_second_run_refuses_naming_the_holder_and_a_killed_holder_does_not_block(
        stand_in: SandboxServer, children: Children, cli: Cli, cluster_name: str) -> None:
    # `cli` runs in the same folder as the children (tests/conftest.py's aws_env chdirs to tmp_path).
    stand_in.configure(cluster_create=SLOW)
    holder = children.start("up", "--name", cluster_name, "--region", REGION)
    holder.wait_for(r"\] cluster: CREATING")
    for key in ("vpc", "subnets", "endpoint-sg", "endpoints", "cluster-role", "node-role", "kms-key",
                "cluster-log-group", "flow-logs-role", "flow-log-group", "flow-logs", "launch-template/nodes"):
        holder.wait_for(rf"\] {key}: created")  # from now on the holder only polls the cluster

    stand_in.clear_calls()
    for verb in (["up"], ["down", "--yes"]):
        second = cli(*verb, "--name", cluster_name, "--region", REGION)
        assert second.exit_code == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        # The header naming cluster, region, account and state comes first; the refusal is one line after it.
        assert len(lines) == 2 and lines[0].startswith("eksprivate ") and lines[1].startswith("error: "), lines
        message = lines[1]
        assert f"pid {holder.proc.pid} on {socket.gethostname()}, started 20" in message, message
        assert second.exception is None
    assert mutating_calls(stand_in.calls()) == [], "a refused run changed AWS"

    assert holder.signal(signal.SIGKILL) == -signal.SIGKILL
    stand_in.configure(cluster_create=FAST["cluster_create"])
    again = cli("up", "--name", cluster_name, "--region", REGION)
    assert again.exit_code == 0, again.stderr
