"""Benchmark a Kubernetes upgrade against the sandbox: makespan vs. its critical path, and each wait's lag.

    python benchmarks/upgrade.py [--time-scale 0.04] [--fixed]

Builds a lean cluster (one node group) on Kubernetes 1.32, then times `up` with kubernetes_version 1.34: two
minors, each control plane -> add-ons beside the node group roll. The critical path is, per minor, the
control-plane update + the slowest node group roll (the sandbox's Timing); the add-on updates fit beside the
roll. benchmarks/run.py measures the same upgrade as a user would (subprocesses, two time scales). For
every update the lag is the time from the sandbox finishing it to the client's next DescribeUpdate, in real
seconds (the sandbox's seconds / time scale). `--fixed` turns the near-the-end pacing off (a fixed poll of
15 s x time scale, as before). The sandbox runs in this process; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ACCOUNT, REGION = "123456789012", "eu-central-1"  # moto's account for dummy credentials; the sandbox's region
LEAN = "flow_logs = false\nsecrets_encryption = false\navailability_zones = 2\nper_az = false\n"


def measure(time_scale: float, paced: bool) -> dict[str, Any]:
    from moto.eks.models import eks_backends
    from typer.testing import CliRunner

    import eksprivate.aws as aws_mod
    from eksprivate.cli import app
    from eksprivate.sandbox import SandboxServer, Timing, eks_updates
    from eksprivate.sandbox.core.clock import current_timing

    saved = dict(aws_mod.EXPECTED)
    if not paced:
        aws_mod.EXPECTED.clear()
    try:
        with SandboxServer(timing=Timing(time_scale=time_scale)) as server:
            folder = Path(tempfile.mkdtemp())
            os.chdir(folder)
            name = f"bench-{uuid.uuid4().hex[:6]}"
            env = {"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_REGION": REGION, "EKSPRIVATE_POLL_INTERVAL": f"{15 * time_scale:g}",
                   "AWS_CONFIG_FILE": str(folder / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none")}
            config = folder / "cluster.toml"
            config.write_text(f'name = "{name}"\n{LEAN}kubernetes_version = "1.32"\n')
            assert CliRunner().invoke(app, ["up", "--config", str(config)], env=env).exit_code == 0
            config.write_text(f'name = "{name}"\n{LEAN}kubernetes_version = "1.34"\n')
            server.clear_calls()
            start = time.monotonic()
            result = CliRunner().invoke(app, ["up", "--config", str(config)], env=env)
            makespan = time.monotonic() - start
            assert result.exit_code == 0, result.output
            offset = time.time() - time.monotonic()  # the call log stamps wall time, the sandbox monotonic
            describes = sorted(c.timestamp for c in server.calls() if c.operation == "DescribeUpdate")
            cluster = eks_backends[ACCOUNT][REGION].clusters[name]
            timing = current_timing()
            lags: list[tuple[str, float]] = []
            for kind, resource in [("control plane", cluster), ("node group", cluster.nodegroups["nodes"]),
                                   *((f"add-on {n}", a) for n, a in vars(cluster)["_sandbox_addons"].items())]:
                for update in eks_updates.updates_of(resource).values():
                    if update.started < start:
                        continue
                    done = update.started + timing.scaled(update.seconds(timing)) + offset
                    seen = next(t for t in describes if t >= done)
                    lags.append((kind, (seen - done) / time_scale))
            critical = 2 * (timing.cluster_version_update + timing.nodegroup_version_update) * time_scale
    finally:
        aws_mod.EXPECTED.clear()
        aws_mod.EXPECTED.update(saved)
    path = [lag for kind, lag in lags if kind in ("control plane", "node group")]
    return {"paced": paced, "time_scale": time_scale, "makespan_s": round(makespan, 2),
            "critical_path_s": round(critical, 2), "overhead_real_s": round((makespan - critical) / time_scale, 1),
            "lags_real_s": [(kind, round(lag, 1)) for kind, lag in lags],
            "critical_wait_lag_mean_real_s": round(sum(path) / len(path), 1),
            "critical_wait_lag_max_real_s": round(max(path), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.04)
    parser.add_argument("--fixed", action="store_true", help="a fixed poll (no pacing near the expected end)")
    args = parser.parse_args()
    figures = measure(args.time_scale, paced=not args.fixed)
    for key, value in figures.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
