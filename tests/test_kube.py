"""kubeconfig location, DescribeCluster → ClusterAccess (moto), and the merge (pure, on tmp files)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from eksprivate.aws import Aws
from eksprivate.errors import UsageError
from eksprivate.kube import ClusterAccess, cluster_entry, kubeconfig_path, merge_context

pytestmark = pytest.mark.plain_moto

REGION = "eu-central-1"
ACCOUNT = "123456789012"
ARN = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/demo"
HOST = "ABCDEF0123456789.gr7.eu-central-1.eks.amazonaws.com"
ACCESS = ClusterAccess(name="demo", arn=ARN, endpoint=f"https://{HOST}", ca_data="Q0EtREFUQQ==", region=REGION)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def by_name(doc: dict[str, Any], section: str) -> dict[str, Any]:
    return {e["name"]: e for e in doc[section]}


EXISTING: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "preferences": {"colors": True},
    "clusters": [{"name": "other", "cluster": {"server": "https://other.example:6443",
                                               "certificate-authority-data": "T1RIRVI="}}],
    "users": [{"name": "other-user", "user": {"token": "secret-token"}}],
    "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other-user", "namespace": "apps"}}],
    "current-context": "other",
    "extensions": [{"name": "tool", "extension": {"x": 1}}],
    "x-unknown-key": {"keep": ["me"]},
}


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(EXISTING, sort_keys=False))
    return path


# -- kubeconfig_path --------------------------------------------------------------------------------

def test_explicit_path_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    assert kubeconfig_path(tmp_path / "explicit") == tmp_path / "explicit"


def test_explicit_path_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path(Path("~/k.yaml")) == tmp_path / "k.yaml"


def test_first_kubeconfig_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["", str(tmp_path / "a"), str(tmp_path / "b")]))
    assert kubeconfig_path(None) == tmp_path / "a"


def test_default_is_home_kube_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path(None) == tmp_path / ".kube" / "config"


def test_empty_kubeconfig_env_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", os.pathsep)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path(None) == tmp_path / ".kube" / "config"


# -- cluster_entry (moto) --------------------------------------------------------------------------

@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def make_cluster(name: str = "demo") -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    eks = boto3.client("eks", region_name=REGION)
    cluster: dict[str, Any] = eks.create_cluster(
        name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/cluster",
        resourcesVpcConfig={"subnetIds": [subnet], "endpointPublicAccess": False,
                            "endpointPrivateAccess": True})["cluster"]
    return cluster


def test_cluster_entry_reads_describe_cluster(aws_env: None) -> None:
    made = make_cluster()
    access = cluster_entry(Aws(REGION), "demo")
    assert access.name == "demo"
    assert access.arn == made["arn"] == ARN
    assert access.endpoint == made["endpoint"].rstrip("/")
    assert access.endpoint.startswith("https://") and not access.endpoint.endswith("/")
    assert access.host == access.endpoint.removeprefix("https://")
    assert access.ca_data == made["certificateAuthority"]["data"]
    assert access.region == REGION
    assert access.subnet_ids == tuple(made["resourcesVpcConfig"]["subnetIds"])


def test_cluster_entry_missing_cluster(aws_env: None) -> None:
    with pytest.raises(UsageError, match="no EKS cluster named 'nope' in eu-central-1"):
        cluster_entry(Aws(REGION), "nope")


@pytest.mark.parametrize("status", ["CREATING", "FAILED", "DELETING"])
def test_cluster_entry_not_active(aws_env: None, status: str) -> None:
    from moto.eks.models import eks_backends

    make_cluster()
    eks_backends[ACCOUNT][REGION].clusters["demo"].status = status
    with pytest.raises(UsageError, match=f"is {status}, not ACTIVE"):
        cluster_entry(Aws(REGION), "demo")


# -- merge_context ---------------------------------------------------------------------------------

def test_new_file_has_update_kubeconfig_shape(tmp_path: Path) -> None:
    path = tmp_path / "config"
    assert merge_context(path, ACCESS, profile=None) == ARN
    doc = load(path)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert doc["current-context"] == ARN
    assert doc["clusters"] == [{"name": ARN, "cluster": {"server": f"https://{HOST}",
                                                         "certificate-authority-data": "Q0EtREFUQQ=="}}]
    assert doc["contexts"] == [{"name": ARN, "context": {"cluster": ARN, "user": ARN}}]
    assert doc["users"] == [{"name": ARN, "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["--region", REGION, "eks", "get-token", "--cluster-name", "demo", "--output", "json"],
    }}}]


def test_profile_goes_into_exec_env(tmp_path: Path) -> None:
    path = tmp_path / "config"
    merge_context(path, ACCESS, profile="prod-admin")
    exec_ = load(path)["users"][0]["user"]["exec"]
    assert exec_["env"] == [{"name": "AWS_PROFILE", "value": "prod-admin"}]
    # A rerun without a profile drops it again.
    merge_context(path, ACCESS, profile=None)
    assert "env" not in load(path)["users"][0]["user"]["exec"]


def test_keeps_everything_else(kubeconfig: Path) -> None:
    merge_context(kubeconfig, ACCESS, profile=None)
    doc = load(kubeconfig)
    for key in ("preferences", "extensions", "x-unknown-key"):
        assert doc[key] == EXISTING[key]
    assert by_name(doc, "clusters")["other"] == EXISTING["clusters"][0]
    assert by_name(doc, "users")["other-user"] == EXISTING["users"][0]
    assert by_name(doc, "contexts")["other"] == EXISTING["contexts"][0]
    assert [e["name"] for e in doc["contexts"]] == ["other", ARN]
    assert doc["current-context"] == ARN


def test_rerun_replaces_without_duplicates(kubeconfig: Path) -> None:
    merge_context(kubeconfig, ACCESS, profile=None)
    first = load(kubeconfig)
    rotated = ClusterAccess(name="demo", arn=ARN, endpoint="https://NEW.gr7.eu-central-1.eks.amazonaws.com",
                            ca_data="TkVXLUNB", region=REGION)
    merge_context(kubeconfig, rotated, profile="p")
    doc = load(kubeconfig)
    for section in ("clusters", "users", "contexts"):
        names = [e["name"] for e in doc[section]]
        assert names == [e["name"] for e in first[section]]
        assert len(names) == len(set(names)) == 2
    ours = by_name(doc, "clusters")[ARN]["cluster"]
    assert ours == {"server": "https://NEW.gr7.eu-central-1.eks.amazonaws.com",
                    "certificate-authority-data": "TkVXLUNB"}


def test_replaces_an_update_kubeconfig_entry_in_place_and_collapses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "config"
    stale = {"name": ARN, "cluster": {"server": "https://old", "certificate-authority-data": "b2xk"}}
    doc = dict(EXISTING, clusters=[stale, EXISTING["clusters"][0], stale])
    path.write_text(yaml.safe_dump(doc))
    merge_context(path, ACCESS, profile=None)
    names = [e["name"] for e in load(path)["clusters"]]
    assert names == [ARN, "other"]
    assert load(path)["clusters"][0]["cluster"]["server"] == f"https://{HOST}"


def test_context_name_and_no_current(kubeconfig: Path) -> None:
    name = merge_context(kubeconfig, ACCESS, profile=None, context_name="demo-tunnel",
                         server="https://127.0.0.1:8443", tls_server_name=HOST, set_current=False)
    assert name == "demo-tunnel"
    doc = load(kubeconfig)
    assert doc["current-context"] == "other"
    assert by_name(doc, "contexts")["demo-tunnel"]["context"] == {"cluster": "demo-tunnel", "user": "demo-tunnel"}
    assert by_name(doc, "clusters")["demo-tunnel"]["cluster"] == {
        "server": "https://127.0.0.1:8443", "certificate-authority-data": "Q0EtREFUQQ==",
        "tls-server-name": HOST}
    assert ARN not in by_name(doc, "clusters")  # the direct entry is a separate one


def test_tunnel_and_direct_entries_coexist(kubeconfig: Path) -> None:
    merge_context(kubeconfig, ACCESS, profile=None)
    merge_context(kubeconfig, ACCESS, profile=None, context_name="demo-tunnel",
                  server="https://127.0.0.1:8443", tls_server_name=HOST, set_current=False)
    doc = load(kubeconfig)
    assert by_name(doc, "clusters")[ARN]["cluster"]["server"] == f"https://{HOST}"
    assert by_name(doc, "clusters")["demo-tunnel"]["cluster"]["server"] == "https://127.0.0.1:8443"
    assert doc["current-context"] == ARN


@pytest.mark.parametrize("text", [
    "clusters: [\n  - name: x\n  bad",  # broken YAML
    "- just\n- a list\n",  # not a mapping
    "kind: Pod\napiVersion: v1\n",  # some other Kubernetes object
    "clusters: not-a-list\n",
    "contexts:\n  - just-a-string\n",
])
def test_invalid_file_is_refused_and_untouched(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    os.chmod(path, 0o644)
    before = path.stat()
    with pytest.raises(UsageError, match=str(path)):
        merge_context(path, ACCESS, profile=None)
    assert path.read_text() == text
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["config"]  # no temp file left behind


def test_empty_file_is_a_new_config(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("")
    merge_context(path, ACCESS, profile=None)
    assert load(path)["current-context"] == ARN


def test_mode_0600_and_parent_0700(tmp_path: Path) -> None:
    path = tmp_path / "new" / ".kube" / "config"
    old_umask = os.umask(0o022)
    try:
        merge_context(path, ACCESS, profile=None)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(os.listdir(path.parent)) == ["config"]


def test_existing_loose_mode_is_tightened(kubeconfig: Path) -> None:
    os.chmod(kubeconfig, 0o644)
    merge_context(kubeconfig, ACCESS, profile=None)
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600


def test_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(EXISTING))
    link = tmp_path / "config"
    link.symlink_to(real)
    merge_context(link, ACCESS, profile=None)
    assert link.is_symlink()
    assert ARN in by_name(load(real), "contexts")


def test_uses_kubeconfig_env_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    merge_context(kubeconfig_path(None), ACCESS, profile=None)
    assert first.exists() and not second.exists()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_reads_the_result(kubeconfig: Path) -> None:
    merge_context(kubeconfig, ACCESS, profile="p")
    merge_context(kubeconfig, ACCESS, profile="p", context_name="demo-tunnel",
                  server="https://127.0.0.1:8443", tls_server_name=HOST, set_current=False)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(kubeconfig.parent)}
    out = subprocess.run(["kubectl", "config", "get-contexts", "-o", "name", "--kubeconfig", str(kubeconfig)],
                         capture_output=True, text=True, check=True, env=env, timeout=60).stdout.split()
    assert sorted(out) == sorted(["other", ARN, "demo-tunnel"])
    current = subprocess.run(["kubectl", "config", "current-context", "--kubeconfig", str(kubeconfig)],
                             capture_output=True, text=True, check=True, env=env, timeout=60).stdout.strip()
    assert current == ARN
