"""Tools for the crash, fault and bad-input tests: the CLI as a child process that can be killed at a
chosen instant, an inventory of everything the account holds for a cluster, and hooks that make the
AWS SDK answer a call with an error (or watch it) in-process, the way real AWS would."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
import suite_speed
from botocore.awsrequest import AWSResponse

from eksprivate.aws import Aws, is_mutating
from eksprivate.sandbox import CallRecord

from . import spawn

REGION = "eu-central-1"
CLUSTER_TAG = "eksprivate:cluster"
HANG_SECONDS = 300.0  # each command in these tests takes seconds; this only stops a hang from stalling CI
CRASHPOINT = Path(__file__).with_name("crashpoint.py")


class CliResult(Protocol):
    """What tests/conftest.py's `cli` fixture returns (the CLI run in-process)."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


Cli = Callable[..., CliResult]


# -- the CLI as a child process ---------------------------------------------------------------------

def child_env(url: str, **extra: str) -> dict[str, str]:
    """A user's environment pointed at the sandbox: dummy credentials, no AWS config, fast polling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EKSPRIVATE_"))}
    env.update({
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true", "EKSPRIVATE_POLL_INTERVAL": suite_speed.POLL_INTERVAL,
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class Child:
    """`eksprivate ARGS` in a child process whose stderr is read line by line as it comes, so a test can
    act (kill it) the moment a given progress line appears."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, *, crash_at: list[str] | None = None) -> None:
        entry = [str(CRASHPOINT)] if crash_at is not None else ["-m", "eksprivate"]
        if crash_at is not None:
            env = {**env, "CRASH_AT": ",".join(crash_at), "CRASH_LOG": str(cwd / "crashes.log")}
        self.args = args
        # A safety net, not a speed check: a command that hangs must fail the test, not stall CI.
        self._deadline = time.monotonic() + HANG_SECONDS
        # Forked from a server that has imported eksprivate already (spawn.py): a real process, ~1 s cheaper.
        self.proc = spawn.start([sys.executable, *entry, *args], env, cwd)
        self.lines: list[str] = []
        self.stdout = ""
        self._cond = threading.Condition()
        self._eof = False
        self._readers = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str) -> str:
        """Block until a stderr line matches `pattern`; fail if the process ends first."""
        regex = re.compile(pattern)
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                if self._eof:
                    raise AssertionError(f"`eksprivate {' '.join(self.args)}` ended (exit {self.proc.wait()}) "
                                         f"without printing /{pattern}/:\n{self.stderr}")
                if time.monotonic() > self._deadline:
                    self.proc.kill()
                    raise AssertionError(f"`eksprivate {' '.join(self.args)}` never printed /{pattern}/ "
                                         f"(hung?):\n{self.stderr}")
                self._cond.wait(timeout=1.0)

    def signal(self, sig: int = signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        try:
            code = self.proc.wait(timeout=max(1.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"`eksprivate {' '.join(self.args)}` still ran after {HANG_SECONDS} s, a hang "
                                 f"(every command here takes seconds):\n{self.stderr}") from None
        for t in self._readers:
            t.join()
        return code


@dataclass
class Children:
    """Every child a test started; whatever still runs at the end is killed."""

    env: dict[str, str]
    cwd: Path
    started: list[Child] = field(default_factory=list)

    def start(self, *args: str, crash_at: list[str] | None = None) -> Child:
        child = Child(list(args), self.env, self.cwd, crash_at=crash_at)
        self.started.append(child)
        return child

    def run(self, *args: str, crash_at: list[str] | None = None) -> Child:
        child = self.start(*args, crash_at=crash_at)
        child.wait()
        return child

    def ok(self, *args: str) -> Child:
        child = self.run(*args)
        assert child.proc.returncode == 0, f"`eksprivate {' '.join(args)}` failed:\n{child.stderr}"
        return child

    def stop_all(self) -> None:
        for child in self.started:
            child.signal(signal.SIGKILL)


# -- what the account holds for a cluster -------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    kind: str
    label: str  # what it is, with the cluster name replaced by "{N}": comparable across clusters
    ident: str  # its id (or unique name) in AWS


def clients(url: str) -> dict[str, Any]:
    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    return {s: make(s) for s in ("ec2", "eks", "iam", "kms", "logs")}


def _name_tag(item: dict[str, Any]) -> str:
    return next((t["Value"] for t in item.get("Tags", []) or [] if t["Key"] == "Name"), "?")


_KEY_TAGS: dict[str, list[dict[str, str]]] = {}


def inventory(url: str, name: str) -> list[Item]:
    """Everything of cluster `name`, found by tag or unique name, as an ops engineer would look for it
    in the console: duplicates show as repeated labels, orphans as labels a clean run does not make."""
    c = clients(url)
    ec2, tag = c["ec2"], [{"Name": f"tag:{CLUSTER_TAG}", "Values": [name]}]
    items: list[Item] = []

    def add(kind: str, label: str, ident: str) -> None:
        items.append(Item(kind, label.replace(name, "{N}"), ident))

    vpcs = ec2.describe_vpcs(Filters=tag)["Vpcs"]
    for v in vpcs:
        add("vpc", _name_tag(v), v["VpcId"])
    for s in ec2.describe_subnets(Filters=tag)["Subnets"]:
        add("subnet", _name_tag(s), s["SubnetId"])
    for r in ec2.describe_route_tables(Filters=tag)["RouteTables"]:
        add("route-table", _name_tag(r), r["RouteTableId"])
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]}
    groups.update({g["GroupId"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "tag:aws:eks:cluster-name", "Values": [name]}])["SecurityGroups"]})
    if vpcs:
        groups.update({g["GroupId"]: g for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [v["VpcId"] for v in vpcs]}])["SecurityGroups"]
            if g["GroupName"] != "default"})
    for g in groups.values():
        add("security-group", g["GroupName"], g["GroupId"])
    endpoint_enis: set[str] = set()
    for e in ec2.describe_vpc_endpoints(Filters=tag)["VpcEndpoints"]:
        endpoint_enis.update(e.get("NetworkInterfaceIds", []))
        if e["State"].lower() != "deleted":
            add("endpoint", e["ServiceName"], e["VpcEndpointId"])
    for f in ec2.describe_flow_logs(Filters=tag)["FlowLogs"]:
        add("flow-log", _name_tag(f), f["FlowLogId"])
    for lt in ec2.describe_launch_templates(Filters=tag)["LaunchTemplates"]:
        add("launch-template", lt["LaunchTemplateName"], lt["LaunchTemplateId"])
    if vpcs:
        for eni in ec2.describe_network_interfaces(
                Filters=[{"Name": "vpc-id", "Values": [v["VpcId"] for v in vpcs]}])["NetworkInterfaces"]:
            if eni["NetworkInterfaceId"] not in endpoint_enis and not eni.get("RequesterManaged"):
                add("eni", eni.get("Description", ""), eni["NetworkInterfaceId"])
    iam = c["iam"]
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role["RoleName"].startswith(f"{name}-"):
                add("role", role["RoleName"], role["RoleName"])
    kms = c["kms"]
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            if key["KeyId"] not in _KEY_TAGS:  # tags never change; every `up` adds a key to the sandbox
                _KEY_TAGS[key["KeyId"]] = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
            if {"TagKey": CLUSTER_TAG, "TagValue": name} in _KEY_TAGS[key["KeyId"]]:
                state = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
                if state != "PendingDeletion":
                    add("kms-key", "secrets key", key["KeyId"])
    for page in kms.get_paginator("list_aliases").paginate():
        for alias in page["Aliases"]:
            if alias["AliasName"] == f"alias/eksprivate/{name}" and alias.get("TargetKeyId"):
                state = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["KeyState"]
                if state != "PendingDeletion":
                    add("kms-alias", alias["AliasName"], alias["TargetKeyId"])
    for prefix in (f"/aws/eks/{name}/", f"/eksprivate/{name}/"):
        for g in c["logs"].describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]:
            add("log-group", g["logGroupName"], g["logGroupName"])
    eks = c["eks"]
    try:
        eks.describe_cluster(name=name)
    except eks.exceptions.ResourceNotFoundException:
        pass
    else:
        add("cluster", name, name)
        for ng in eks.list_nodegroups(clusterName=name)["nodegroups"]:
            add("nodegroup", ng, ng)
    return items


def shape(items: list[Item]) -> dict[str, list[str]]:
    """Kind → sorted labels: equal shapes mean the same resources, no duplicates, no orphans."""
    out: dict[str, list[str]] = {}
    for item in items:
        out.setdefault(item.kind, []).append(item.label)
    return {k: sorted(v) for k, v in sorted(out.items())}


def state_strings(path: Path) -> set[str]:
    """Every string the state file records (ids, names, ARNs)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(path.read_text())["steps"])
    return found


def unrecorded(items: list[Item], state: Path) -> list[Item]:
    """Resources in the account the state file does not name (the VPC's own default SG excepted)."""
    known = state_strings(state)
    return [i for i in items if i.ident not in known and i.kind not in ("kms-alias",)]


def refused_on_input(result: CliResult, *says: str) -> None:
    """A usage error: exit 2, no traceback, the last line one error naming each of `says`."""
    assert result.exception is None, result.exception
    assert result.exit_code == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr
    for text in says:
        assert text in line, line


def mutating_calls(records: list[CallRecord]) -> list[str]:
    return [f"{r.service}:{r.operation}" for r in records if is_mutating(r.operation)]


# -- making the SDK answer (or watch) calls in-process ---------------------------------------------------

@dataclass
class Seen:
    """One call the SDK made, as a hook saw it."""

    service: str
    operation: str
    params: dict[str, Any]  # the serialized request: query `body` fields, or the REST `url_path`
    status: int | None
    when: float


class SdkHooks:
    """Botocore event hooks on every `Aws` the CLI makes in this process.

    `fail` answers a call with an AWS error response without sending it (as AWS would refuse it);
    `watch` records calls with their parameters and HTTP status, in order.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._hooks: list[tuple[str, Callable[..., Any]]] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        original = Aws.__init__
        hooks = self._hooks

        def init(aws: Aws, *args: Any, **kwargs: Any) -> None:
            original(aws, *args, **kwargs)
            events = aws.session._session.get_component("event_emitter")
            for event, handler in hooks:
                events.register(event, handler)

        monkeypatch.setattr(Aws, "__init__", init)

    def fail(self, service: str, operation: str, code: str, message: str, *, status: int = 400,
             times: int | None = None, when: Callable[[dict[str, Any]], bool] | None = None) -> list[int]:
        """Answer `service`.`operation` with error `code` (`times` times at most; only calls whose request
        satisfies `when`). Returns a one-element list counting the refusals."""
        count = [0]

        def handler(params: dict[str, Any], **_: Any) -> Any:
            if when is not None and not when(params):
                return None
            with self._lock:
                if times is not None and count[0] >= times:
                    return None
                count[0] += 1
            response = AWSResponse(params.get("url", ""), status, {}, None)
            return response, {"Error": {"Code": code, "Message": message},
                              "ResponseMetadata": {"HTTPStatusCode": status}}

        self._hooks.append((f"before-call.{service}.{operation}", handler))
        return count

    def watch(self, *calls: str) -> None:
        """Record the calls named `service.Operation` (e.g. "iam.DeleteRole") in `seen`."""
        for call in calls:
            service, operation = call.split(".")

            def before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
                context["_faults_params"] = params

            def after(http_response: Any, context: dict[str, Any], model: Any, s: str = service,
                      **_: Any) -> None:
                params = context.get("_faults_params", {})
                body = params.get("body")
                if isinstance(body, bytes | str) and body:  # JSON protocols (KMS, Logs, ...)
                    body = json.loads(body)
                fields = dict(body) if isinstance(body, dict) else {}
                fields["url_path"] = params.get("url_path", "")
                with self._lock:
                    self.seen.append(Seen(s, model.name, fields, getattr(http_response, "status_code", None),
                                          time.monotonic()))

            self._hooks.append((f"before-call.{service}.{operation}", before))
            self._hooks.append((f"after-call.{service}.{operation}", after))

    def calls(self, operation: str) -> Iterator[Seen]:
        return (s for s in list(self.seen) if s.operation == operation)
