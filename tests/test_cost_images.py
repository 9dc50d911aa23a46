"""Issue 13: what a private cluster costs (`plan`/`status`), and what it can pull (ECR pull-through cache).

Through the CLI against the sandbox, which answers the Price List (GetProducts, in its JSON-string format),
a Spot price history, and the pull-through-cache API (moto has none of them). Expected figures are the
eu-central-1 list prices of /work/shared/notes/aws-facts.md, worked out by hand below.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eksprivate.aws import is_mutating
from eksprivate.cost import Footprint, NodeGroupUse, TablePrices, estimate, spot_median
from eksprivate.images import cached_reference, parse_image
from eksprivate.sandbox import SandboxServer
from eksprivate.sandbox import pricing as sandbox_pricing

REGION = "eu-central-1"
CLUSTER_TAG = "eksprivate:cluster"
# Default cluster, eu-central-1: control plane 0.10/h; 6 endpoints (eks-auth for the Pod Identity add-on) x 3 AZ
# x 0.012/h; 3 x t3.small 0.024/h;
# 3 x 20 GiB gp3 at 0.0952/GiB-month; KMS key 1/month.
MONTHLY = {"EKS control plane": 73.0, "endpoints": 6 * 3 * 0.012 * 730, "nodes": 3 * 0.024 * 730,
           "volumes": 3 * 20 * 0.0952, "kms": 1.0}
NAT_MONTHLY = 3 * 0.052 * 730


@pytest.fixture
def price_list_down() -> Iterator[None]:
    sandbox_pricing.set_price_list_reachable(False)
    try:
        yield
    finally:
        sandbox_pricing.set_price_list_reachable(True)


def write_config(folder: Path, text: str) -> str:
    path = folder / "cluster.toml"
    path.write_text(text)
    return str(path)


# The pull-through tests look at rules, the node role's inline policy and cache repositories, all made by a step
# that needs only the node role. Their clusters leave out what none of them looks at (one node group over two
# AZs; no logs, flow logs, KMS key or add-ons): the same rules and policy for about a third less CPU per life.
LEAN = ('per_az = false\navailability_zones = 2\ncontrol_plane_logging = false\nflow_logs = false\n'
        'secrets_encryption = false\n[addons]\n')


def lean_config(folder: Path, text: str) -> str:
    """`write_config` of `text` (top-level keys) on a lean cluster (`LEAN`)."""
    return write_config(folder, text + LEAN)


def plan_json(cli: Callable[..., Any], *args: str) -> dict[str, Any]:
    result = cli("plan", *args, "--output", "json")
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def monthly_of(cost: dict[str, Any], starts: str) -> float:
    return sum(line["monthly"] or 0 for line in cost["lines"] if line["item"].startswith(starts))


# -- cost ------------------------------------------------------------------------------------------------


def test_plan_estimates_every_billed_item_from_the_price_list(cli: Callable[..., Any], cluster_name: str) -> None:
    """A naive estimate prices an interface endpoint once, not per AZ (a third of the real bill), drops the
    volumes and the key, or invents figures for usage-based charges: each line is checked."""
    data = plan_json(cli, "--name", cluster_name)
    cost = data["cost"]
    assert "steps" in data and data["destroy"] is False  # existing keys kept
    lines = {line["item"]: line for line in cost["lines"]}
    control = lines["EKS control plane"]
    assert (control["unit_price"], control["quantity"], control["hours"], control["monthly"]) == (0.1, 1, 730.0, 73.0)
    assert control["source"] == "price-list" and control["currency"] == "USD"
    endpoints = [line for line in cost["lines"] if line["item"].startswith("interface endpoint ")
                 and not line["usage_based"]]
    assert sorted(line["item"].split()[2] for line in endpoints) == ["ec2", "ecr.api", "ecr.dkr", "eks-auth", "logs",
                                                                          "sts"]
    assert all(line["quantity"] == 3 and line["unit_price"] == 0.012 for line in endpoints)
    assert monthly_of(cost, "interface endpoint ") == pytest.approx(MONTHLY["endpoints"])
    assert monthly_of(cost, "node group") == pytest.approx(MONTHLY["nodes"] + MONTHLY["volumes"], abs=1e-3)
    assert lines["KMS key (secrets encryption)"]["monthly"] == 1.0
    usage = [line for line in cost["lines"] if line["usage_based"]]
    assert usage and all(line["monthly"] is None and line["unit_price"] is None for line in usage)
    assert cost["total"]["monthly"] == pytest.approx(sum(MONTHLY.values()), abs=0.01)
    assert cost["total"]["hourly"] == pytest.approx(sum(MONTHLY.values()) / 730, abs=1e-4)
    assert cost["total"]["unknown_lines"] == 0
    nat = cost["with_nat_gateways"]
    assert nat["monthly"] == pytest.approx(sum(MONTHLY.values()) - MONTHLY["endpoints"] + NAT_MONTHLY, abs=0.01)
    assert cost["sources"][0]["source"] == "price-list"


def test_plan_text_names_the_source_and_the_nat_trade(cli: Callable[..., Any], cluster_name: str) -> None:
    result = cli("plan", "--name", cluster_name)
    assert result.exit_code == 0, result.stderr
    assert "total: $" in result.stdout and "/month (730 h)" in result.stdout
    assert "with NAT gateways instead of interface endpoints" in result.stdout
    assert "AWS Price List API" in result.stdout


def test_without_the_price_list_the_shipped_table_is_used_and_dated(
        cli: Callable[..., Any], cluster_name: str, price_list_down: None) -> None:
    """Naive code would fail the plan (or print no price) when pricing:GetProducts is denied."""
    cost = plan_json(cli, "--name", cluster_name)["cost"]
    assert {line["source"] for line in cost["lines"] if not line["usage_based"]} == {"table"}
    as_of = TablePrices().as_of
    assert cost["sources"] == [{"source": "table", "as_of": as_of, "detail": cost["sources"][0]["detail"]}]
    assert "AccessDeniedException" in cost["sources"][0]["detail"]
    assert cost["total"]["monthly"] == pytest.approx(sum(MONTHLY.values()), abs=0.01)


def test_unknown_region_or_instance_type_is_said_never_invented() -> None:
    """A naive table lookup falls back to another region's price or to 0; here the line says unknown and the
    total counts only what is known (and says it is a lower bound)."""
    table = TablePrices()
    far = estimate(Footprint("ap-southeast-2", interface_endpoints=("ec2",), az_count=3), table)
    assert all(line.unit_price is None and line.note.startswith("unknown") for line in far.lines
               if not line.usage_based)
    assert far.monthly == 0 and len(far.unknown) == 2
    big = NodeGroupUse("g", "c7gn.16xlarge", "ON_DEMAND", 2, 20)
    odd = estimate(Footprint(REGION, cluster=False, nodegroups=(big,)), table)
    instance = odd.lines[0]
    assert instance.unit_price is None and "c7gn.16xlarge" in instance.note
    assert odd.monthly == pytest.approx(2 * 20 * 0.0952)  # the volumes are known, the instance is not


def test_spot_is_the_median_of_recent_prices_and_marked_variable(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path) -> None:
    """Naive code prices SPOT as on demand (or as the last price seen); AWS's history varies per AZ."""
    config = write_config(aws_env, 'capacity_type = "SPOT"\n')
    cost = plan_json(cli, "--name", cluster_name, "--config", config)["cost"]
    spot = [line for line in cost["lines"] if "(spot)" in line["item"]]
    assert len(spot) == 3 and all(line["variable"] and line["source"] == "spot-history" for line in spot)
    # The sandbox's history for AZ "a": 0.3 x 0.024 x (0.96, 1.0, 1.08) -> median 0.3 x 0.024.
    a = next(line for line in spot if line["item"].split(":")[0].endswith("-a"))
    assert a["unit_price"] == pytest.approx(0.3 * 0.024, rel=1e-3)
    assert cost["total"]["variable"] is True


def test_spot_median_is_taken_per_az_first() -> None:
    history = [{"AvailabilityZone": "x-1a", "SpotPrice": p} for p in ("0.01", "0.01", "0.09")] + \
              [{"AvailabilityZone": "x-1b", "SpotPrice": "0.03"}]
    price = spot_median(history, "2026-11-30")
    assert price is not None and price.variable and price.amount == pytest.approx(0.02)  # median(0.01, 0.03)
    assert spot_median([], "2026-11-30") is None


def test_status_prices_what_exists_and_plan_after_up_agrees(cli: Callable[..., Any], cluster_name: str) -> None:
    """Before `up` nothing exists, so status costs nothing (naive code would price the config)."""
    before = cli("status", "--name", cluster_name, "--output", "json")
    assert before.exit_code == 0, before.stderr
    assert json.loads(before.stdout)["cost"]["total"]["monthly"] == 0
    assert cli("up", "--name", cluster_name).exit_code == 0
    after = json.loads(cli("status", "--name", cluster_name, "--output", "json").stdout)["cost"]
    planned = plan_json(cli, "--name", cluster_name)["cost"]
    assert after["total"]["monthly"] == pytest.approx(sum(MONTHLY.values()), abs=0.01)
    assert planned["total"] == after["total"]
    assert "cost" not in plan_json(cli, "--name", cluster_name, "--destroy")
    assert cli("down", "--name", cluster_name, "--yes").exit_code == 0


# -- images ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "cached"), [
    ("registry.k8s.io/pause:3.10", "k8s/pause:3.10"),
    ("quay.io/prometheus/node-exporter:v1.8.2", "quay/prometheus/node-exporter:v1.8.2"),
    ("public.ecr.aws/eks/aws-load-balancer-controller:v2.8.1", "ecr-public/eks/aws-load-balancer-controller:v2.8.1"),
    ("nginx", "docker-hub/library/nginx:latest"),
    ("docker.io/bitnami/redis:7.4", "docker-hub/bitnami/redis:7.4"),
    ("ghcr.io/fluxcd/source-controller@sha256:" + "ab" * 32, "ghcr/fluxcd/source-controller@sha256:" + "ab" * 32),
])
def test_image_references_are_rewritten_to_the_cache(reference: str, cached: str) -> None:
    registry = f"123456789012.dkr.ecr.{REGION}.amazonaws.com"
    assert cached_reference(reference, "123456789012", REGION) == f"{registry}/{cached}"


def test_image_rejects_what_no_rule_can_cache() -> None:
    with pytest.raises(ValueError, match="no pull-through cache upstream"):
        cached_reference("mcr.microsoft.com/dotnet/runtime:8.0", "123456789012", REGION)
    with pytest.raises(ValueError):
        parse_image("UPPER/case")


def test_image_command_prints_the_cluster_reference(cli: Callable[..., Any], aws_env: Path) -> None:
    config = write_config(aws_env, 'pull_through_cache = ["k8s"]\n')
    result = cli("image", "registry.k8s.io/pause:3.10", "--config", config)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"123456789012.dkr.ecr.{REGION}.amazonaws.com/k8s/pause:3.10"
    unconfigured = cli("image", "quay.io/a/b:1", "--config", config)
    assert unconfigured.exit_code == 0 and "quay is not in this config's pull_through_cache" in unconfigured.stderr
    bad = cli("image", "not a reference")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


# Rules are registry-wide (one per prefix per account and region); every test starts from an emptied sandbox
# (`SandboxResets`), so with no rule and no repository.
def _rules(sandbox_client: Callable[[str], Any]) -> dict[str, dict[str, Any]]:
    return {r["ecrRepositoryPrefix"]: r for r in
            sandbox_client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]}


def _node_policy(sandbox_client: Callable[[str], Any], cluster_name: str) -> dict[str, Any]:
    role = f"{cluster_name}-{REGION}-node"
    return dict(sandbox_client("iam").get_role_policy(RoleName=role, PolicyName="pull-through-cache")["PolicyDocument"])


def test_up_creates_rules_and_exactly_the_first_pull_permissions_down_deletes_them_and_the_cache(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any],
        stand_in: SandboxServer) -> None:
    """Naive code forgets the node role's ecr:BatchImportUpstreamImage (first pulls fail), grants ecr:* on *,
    or leaves the cache repositories behind at `down` (or deletes a same-prefix repository it never made)."""
    config = lean_config(aws_env, 'pull_through_cache = ["ecr-public", "k8s", "quay"]\n')
    # Made by someone before our rule: not a cache repository of it, never deleted.
    sandbox_client("ecr").create_repository(repositoryName="k8s/theirs")
    assert cli("up", "--name", cluster_name, "--config", config).exit_code == 0
    rules = _rules(sandbox_client)
    assert {p: rules[p]["upstreamRegistryUrl"] for p in ("ecr-public", "k8s", "quay")} == {
        "ecr-public": "public.ecr.aws", "k8s": "registry.k8s.io", "quay": "quay.io"}
    policy = _node_policy(sandbox_client, cluster_name)
    assert policy["Statement"] == [{
        "Sid": "PullThroughCacheFirstPull", "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        "Resource": [f"arn:aws:ecr:{REGION}:123456789012:repository/{p}/*" for p in ("ecr-public", "k8s", "quay")]}]
    # A rerun reads only.
    stand_in.clear_calls()
    assert cli("up", "--name", cluster_name, "--config", config).exit_code == 0
    assert [c for c in stand_in.calls() if is_mutating(c.operation)] == []
    # ECR makes the cache repositories on first pulls; plan --destroy lists them with the rules.
    sandbox_client("ecr").create_repository(repositoryName="k8s/pause")
    sandbox_client("ecr").create_repository(repositoryName="quay/prometheus/node-exporter")
    destroy = plan_json(cli, "--name", cluster_name, "--config", config, "--destroy")
    step = next(s for s in destroy["steps"] if s["key"] == "pull-through-cache")
    assert step["action"] == "delete" and "k8s/pause" in step["resources"] and "k8s/ →" in step["resources"]
    assert "k8s/theirs" not in step["resources"]
    assert cli("down", "--name", cluster_name, "--config", config, "--yes").exit_code == 0
    assert not {"ecr-public", "k8s", "quay"} & set(_rules(sandbox_client))
    names = {r["repositoryName"] for r in sandbox_client("ecr").describe_repositories()["repositories"]}
    assert "k8s/pause" not in names and "quay/prometheus/node-exporter" not in names and "k8s/theirs" in names


def test_lost_state_down_finds_the_rules_from_the_node_policy(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any]) -> None:
    """Rules cannot be tagged: naive code that only trusts the state file leaves them behind."""
    config = lean_config(aws_env, 'pull_through_cache = ["k8s"]\n')
    assert cli("up", "--name", cluster_name, "--config", config).exit_code == 0
    for path in (aws_env / "state").glob(f"{cluster_name}-*.json*"):
        path.unlink()
    assert cli("down", "--name", cluster_name, "--yes").exit_code == 0  # no config, no state
    assert "k8s" not in _rules(sandbox_client)


def test_a_rule_eksprivate_did_not_make_is_used_and_kept(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any]) -> None:
    sandbox_client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")
    config = lean_config(aws_env, 'pull_through_cache = ["quay"]\n')
    planned = plan_json(cli, "--name", cluster_name, "--config", config)
    assert cli("up", "--name", cluster_name, "--config", config).exit_code == 0
    assert cli("down", "--name", cluster_name, "--config", config, "--yes").exit_code == 0
    assert "quay" in _rules(sandbox_client)
    assert planned["steps"]


def _secret(sandbox_client: Callable[[str], Any], name: str, value: dict[str, str]) -> str:
    return str(sandbox_client("secretsmanager").create_secret(Name=name, SecretString=json.dumps(value))["ARN"])


def test_credentialed_upstream_is_created_with_its_secret_and_validated(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any]) -> None:
    arn = _secret(sandbox_client, f"ecr-pullthroughcache/{cluster_name}-hub", {"username": "u", "accessToken": "t"})
    config = lean_config(aws_env, f'pull_through_cache = ["docker-hub"]\n'
                                   f'pull_through_credentials = {{ docker-hub = "{arn}" }}\n')
    result = cli("up", "--name", cluster_name, "--config", config)
    assert result.exit_code == 0, result.stderr
    rule = _rules(sandbox_client)["docker-hub"]
    assert rule["upstreamRegistryUrl"] == "registry-1.docker.io" and rule["credentialArn"] == arn
    state = (aws_env / "state" / f"{cluster_name}-{REGION}.json").read_text()
    assert '"accessToken"' not in state and '"t"' not in state  # the ARN only, never the secret
    assert cli("down", "--name", cluster_name, "--config", config, "--yes").exit_code == 0


def test_a_secret_without_credentials_fails_validation_in_one_line(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any]) -> None:
    """ValidatePullThroughCacheRule is the only early sign of a wrong token: naive code never calls it and
    the first pod pull fails hours later."""
    arn = _secret(sandbox_client, f"ecr-pullthroughcache/{cluster_name}-gh", {"user": "u"})
    config = lean_config(aws_env, f'pull_through_cache = ["ghcr"]\npull_through_credentials = {{ ghcr = "{arn}" }}\n')
    result = cli("up", "--name", cluster_name, "--config", config)
    assert result.exit_code == 1
    assert "cannot sign in to ghcr.io" in result.stderr
    assert cli("down", "--name", cluster_name, "--config", config, "--yes").exit_code == 0


def _nothing_made(sandbox_client: Callable[[str], Any], cluster_name: str) -> bool:
    ours = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster_name]}]
    return not sandbox_client("ec2").describe_vpcs(Filters=ours)["Vpcs"]


@pytest.mark.parametrize(("config", "says"), [
    ('pull_through_cache = ["docker-hub"]\n', "docker-hub needs credentials"),
    ('pull_through_cache = ["ghcr"]\npull_through_credentials = { ghcr = '
     '"arn:aws:secretsmanager:eu-central-1:123456789012:secret:ghcr-token-AbCdEf" }\n',
     "must begin with ecr-pullthroughcache/"),
    ('pull_through_cache = ["gitlab"]\npull_through_credentials = { gitlab = '
     '"arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/gl-AbCdEf" }\n',
     "ECR needs it in the cluster's region eu-central-1"),
    ('pull_through_cache = ["gitlab"]\npull_through_credentials = { gitlab = '
     '"arn:aws:secretsmanager:eu-central-1:123456789012:secret:ecr-pullthroughcache/absent-AbCdEf" }\n',
     "does not exist"),
    ('pull_through_cache = ["k8s"]\npull_through_credentials = { k8s = '
     '"arn:aws:secretsmanager:eu-central-1:123456789012:secret:ecr-pullthroughcache/k-AbCdEf" }\n',
     "k8s takes no credentials"),
    ('pull_through_cache = ["dockerhub"]\n', "unknown upstream 'dockerhub'"),
])
def test_bad_pull_through_config_is_one_line_and_creates_nothing(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any],
        config: str, says: str) -> None:
    result = cli("up", "--name", cluster_name, "--config", write_config(aws_env, config))
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr and result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr
    assert _nothing_made(sandbox_client, cluster_name)
    assert not (aws_env / "state" / f"{cluster_name}-{REGION}.json").exists()


def test_extended_support_names_its_price_and_nat_swaps_only_the_endpoints() -> None:
    """Naive code prices EXTENDED support silently as standard, or drops the endpoints from the NAT variant
    without adding the gateways."""
    fp = Footprint(REGION, support_type="EXTENDED", interface_endpoints=("ec2", "sts"), az_count=2)
    est = estimate(fp, TablePrices())
    assert "$0.60/h" in est.lines[0].note
    nat = est.with_nat()
    assert not [line for line in nat if line.item.startswith("interface endpoint ")]
    assert sum(line.monthly or 0 for line in nat) == pytest.approx(73.0 + 2 * 0.052 * 730)


def test_a_rule_made_by_someone_else_during_up_is_used_never_owned(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Between `find` and CreatePullThroughCacheRule another tool makes the same prefix. Naive code fails the
    run, or records the rule as its own and `down` deletes someone else's rule."""
    from eksprivate.steps.pull_through import PullThroughCache

    original = PullThroughCache._policy
    raced: list[bool] = []

    def policy_then_race(self: PullThroughCache, *args: Any) -> Any:
        if not raced:
            raced.append(True)
            sandbox_client("ecr").create_pull_through_cache_rule(ecrRepositoryPrefix="quay",
                                                                 upstreamRegistryUrl="quay.io")
        return original(self, *args)

    monkeypatch.setattr(PullThroughCache, "_policy", policy_then_race)
    config = lean_config(aws_env, 'pull_through_cache = ["quay"]\n')
    result = cli("up", "--name", cluster_name, "--config", config)
    assert result.exit_code == 0, result.stderr
    assert raced
    statements = {s["Sid"]: s["Resource"] for s in _node_policy(sandbox_client, cluster_name)["Statement"]}
    assert list(statements) == ["PullThroughCacheFirstPullOtherRules"]
    monkeypatch.setattr(PullThroughCache, "_policy", original)
    assert cli("down", "--name", cluster_name, "--config", config, "--yes").exit_code == 0
    assert "quay" in _rules(sandbox_client)


def test_a_rule_dropped_from_the_config_is_kept_until_prune(
        cli: Callable[..., Any], cluster_name: str, aws_env: Path, sandbox_client: Callable[[str], Any]) -> None:
    """Naive code deletes the rule (and the cache) the moment it leaves the config, or never, and leaves the
    node role allowed on a prefix it no longer uses."""
    config = lean_config(aws_env, 'pull_through_cache = ["k8s", "quay"]\n')
    assert cli("up", "--name", cluster_name, "--config", config).exit_code == 0
    sandbox_client("ecr").create_repository(repositoryName="quay/cached/image")
    lean_config(aws_env, 'pull_through_cache = ["k8s"]\n')
    planned = plan_json(cli, "--name", cluster_name, "--config", config)
    details = next(s for s in planned["steps"] if s["key"] == "pull-through-cache")["details"]
    assert any(d.startswith("! rule quay/ is not in pull_through_cache") for d in details)
    assert cli("up", "--name", cluster_name, "--config", config).exit_code == 0
    assert "quay" in _rules(sandbox_client)
    assert cli("up", "--name", cluster_name, "--config", config, "--prune").exit_code == 0
    assert "quay" not in _rules(sandbox_client) and "k8s" in _rules(sandbox_client)
    names = {r["repositoryName"] for r in sandbox_client("ecr").describe_repositories()["repositories"]}
    assert "quay/cached/image" not in names
    [statement] = _node_policy(sandbox_client, cluster_name)["Statement"]
    assert statement["Resource"] == [f"arn:aws:ecr:{REGION}:123456789012:repository/k8s/*"]
    assert cli("down", "--name", cluster_name, "--config", config, "--yes").exit_code == 0
