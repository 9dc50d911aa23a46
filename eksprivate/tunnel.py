"""Reach the private API from a laptop: Session Manager port forwarding through one of the cluster's nodes.

`aws ssm start-session` with the AWS-StartPortForwardingSessionToRemoteHost document makes the SSM agent
on a node open a TCP connection to the API's private address and relays it to 127.0.0.1:PORT here. A
kubeconfig context `<cluster>-tunnel` points kubectl at that local port while still checking the API
server's certificate against its real name (`tls-server-name`).

Needs on the AWS side: the ssm, ssmmessages and ec2messages interface endpoints in the VPC (the nodes
have no internet, so the agent reaches Session Manager only through them) and AmazonSSMManagedInstanceCore
on the node role. Needs locally: the AWS CLI v2 and the Session Manager plugin.
"""

from __future__ import annotations

import errno
import shlex
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eksprivate.errors import UsageError
from eksprivate.grants import Arns, Condition, Grant, grant, reads
from eksprivate.kube import cluster_entry, kubeconfig_path, merge_context

if TYPE_CHECKING:  # keep `import eksprivate.kube/tunnel` free of boto3
    from eksprivate.aws import Aws

SSM_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages")
PORT_FORWARD_DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
API_PORT = 443
DEFAULT_LOCAL_PORT = 8443
CLUSTER_NAME_TAG = "eks:cluster-name"  # EKS puts it on every managed node group instance


def grants(arns: Arns) -> list[Grant]:
    """What `eksprivate tunnel` calls (and the `aws ssm start-session` it runs): a Session Manager port
    forward through one of the cluster's nodes only (ssm:resourceTag on the instance, AWS's own document)."""
    return [reads("eks:DescribeCluster", on=arns.eks_cluster(), why="tunnel: the API endpoint"),
            reads("ec2:DescribeInstances", "ec2:DescribeVpcEndpoints", why="tunnel: a running node; the SSM endpoints"),
            grant("create", "ssm:StartSession", on=arns.ec2("instance/*"),
                  when=[Condition("StringEquals", f"ssm:resourceTag/{CLUSTER_NAME_TAG}", (arns.cluster,))],
                  why="tunnel: a session on a node of this cluster only"),
            grant("create", "ssm:StartSession",
                  on=f"arn:{arns.partition}:ssm:{arns.region}::document/{PORT_FORWARD_DOCUMENT}",
                  why="tunnel: AWS's port-forwarding document only"),
            grant("remove", "ssm:TerminateSession",
                  on=arns.arn("ssm", "session/${aws:userid}-*"), why="tunnel: end your own session")]
# Endpoint states that will not (or no longer) carry traffic.
DEAD_ENDPOINT_STATES = {"deleting", "deleted", "rejected", "failed", "expired"}

AWS_CLI_INSTALL = "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
SSM_PLUGIN_INSTALL = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
                      "session-manager-working-with-install-plugin.html")

Runner = Callable[[list[str]], "subprocess.CompletedProcess[Any]"]
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def tunnel_context_name(cluster_name: str) -> str:
    return f"{cluster_name}-tunnel"


def find_tunnel_target(aws: Aws, cluster_name: str) -> str:
    """The id of a running instance of the cluster's managed nodes (the oldest, so reruns pick the same)."""
    filters = [
        {"Name": f"tag:{CLUSTER_NAME_TAG}", "Values": [cluster_name]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]
    instances: list[dict[str, Any]] = []
    for reservation in aws.ec2.paginate("describe_instances", "Reservations", Filters=filters):
        instances.extend(reservation.get("Instances", []))
    if not instances:
        raise UsageError(
            f"no running node of cluster {cluster_name!r} in {aws.region} to tunnel through",
            "the tunnel runs through a managed node: wait for the node group to be ACTIVE with at least "
            "one node (desired_size >= 1), then rerun")
    instances.sort(key=lambda i: (str(i.get("LaunchTime", "")), str(i["InstanceId"])))
    return str(instances[0]["InstanceId"])


def check_ssm_endpoints(aws: Aws, vpc_id: str) -> list[str]:
    """Which of the ssm, ssmmessages, ec2messages interface endpoints the VPC lacks (in that order)."""
    present: set[str] = set()
    marker = f".{aws.region}."
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    for ep in aws.ec2.paginate("describe_vpc_endpoints", "VpcEndpoints", Filters=filters):
        if ep.get("VpcId", vpc_id) != vpc_id or ep.get("VpcEndpointType", "Interface") != "Interface":
            continue
        if str(ep.get("State", "")).lower() in DEAD_ENDPOINT_STATES:
            continue
        service = str(ep.get("ServiceName", ""))  # com.amazonaws.<region>.<service>
        if marker in service:
            present.add(service.split(marker, 1)[1])
    return [svc for svc in SSM_ENDPOINTS if svc not in present]


def require_ssm_endpoints(aws: Aws, vpc_id: str) -> None:
    """Refuse (UsageError) when Session Manager cannot work in the VPC."""
    missing = check_ssm_endpoints(aws, vpc_id)
    if missing:
        quoted = ", ".join(f'"{s}"' for s in SSM_ENDPOINTS)
        raise UsageError(
            f"VPC {vpc_id} has no {', '.join(missing)} interface endpoint"
            f"{'s' if len(missing) > 1 else ''}, so its nodes cannot reach Session Manager",
            f"add endpoints = [{quoted}] to the config, then rerun `eksprivate up`")


def port_forward_command(target: str, remote_host: str, local_port: int, region: str,
                         profile: str | None) -> list[str]:
    """The `aws ssm start-session` command that forwards 127.0.0.1:local_port to remote_host:443."""
    cmd = [
        "aws", "ssm", "start-session",
        "--target", target,
        "--document-name", PORT_FORWARD_DOCUMENT,
        "--parameters", f"host={remote_host},portNumber={API_PORT},localPortNumber={local_port}",
        "--region", region,
    ]
    if profile:
        cmd += ["--profile", profile]
    return cmd


def missing_tools() -> list[str]:
    """Local programs the tunnel needs that are not on PATH."""
    return [tool for tool in ("aws", "session-manager-plugin") if shutil.which(tool) is None]


def require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    installs = []
    if "aws" in missing:
        installs.append(f"the AWS CLI v2 ({AWS_CLI_INSTALL})")
    if "session-manager-plugin" in missing:
        installs.append(f"the Session Manager plugin ({SSM_PLUGIN_INSTALL})")
    raise UsageError(f"{' and '.join(f'`{m}`' for m in missing)} not found on PATH",
                     f"install {' and '.join(installs)}, then rerun")


def port_available(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (the plugin would fail later with a vaguer error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_local_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port (1-65535)")
    if not port_available(port):
        raise UsageError(f"127.0.0.1:{port} is already in use (another tunnel?)",
                         f"stop it or pass another --port, e.g. --port {port + 1 if port < 65535 else 8443}")


def _cluster_vpc(aws: Aws, vpc_id: str, subnet_ids: tuple[str, ...], cluster_name: str) -> str:
    if vpc_id:
        return vpc_id
    if subnet_ids:
        subnets = aws.ec2.describe_subnets(SubnetIds=list(subnet_ids[:1])).get("Subnets", [])
        if subnets:
            return str(subnets[0]["VpcId"])
    raise UsageError(f"cannot tell which VPC cluster {cluster_name!r} is in")


def run_tunnel(
    aws: Aws,
    cluster_name: str,
    *,
    local_port: int = DEFAULT_LOCAL_PORT,
    kubeconfig: Path | None = None,
    profile: str | None = None,
    say: Say = _quiet,
    runner: Runner = subprocess.run,
) -> int:
    """Open the tunnel in the foreground until it ends (Ctrl-C); returns the session's exit code.

    Checks everything that would otherwise fail inside the session (local tools, the port, the VPC's
    SSM endpoints, a running node) before it writes the `<cluster>-tunnel` kubeconfig context.
    `profile` defaults to the one `aws` was made with.
    """
    profile = profile if profile is not None else aws.profile
    require_tools()
    check_local_port(local_port)
    access = cluster_entry(aws, cluster_name)
    vpc_id = _cluster_vpc(aws, access.vpc_id, access.subnet_ids, cluster_name)
    require_ssm_endpoints(aws, vpc_id)
    target = find_tunnel_target(aws, cluster_name)

    path = kubeconfig_path(kubeconfig)
    context = merge_context(
        path, access, profile=profile, context_name=tunnel_context_name(access.name),
        server=f"https://127.0.0.1:{local_port}", tls_server_name=access.host, set_current=False)
    cmd = port_forward_command(target, access.host, local_port, aws.region, profile)

    say(f"kubeconfig {path}: context {context} → https://127.0.0.1:{local_port} "
        f"(certificate checked for {access.host})")
    say(f"tunnel 127.0.0.1:{local_port} → {access.host}:{API_PORT} through node {target} (Session Manager)")
    say(f"in another terminal: kubectl --context {context} get nodes")
    say("Ctrl-C closes the tunnel")
    say(f"$ {shlex.join(cmd)}")
    try:
        result = runner(cmd)
    except FileNotFoundError:
        raise UsageError("`aws` could not be started", f"install the AWS CLI v2 ({AWS_CLI_INSTALL})") from None
    except KeyboardInterrupt:
        say("tunnel closed")
        return 130
    code = int(result.returncode)
    if code not in (0, 130, -2):  # -2: ended by SIGINT
        say(f"the session ended with exit code {code}; if it said TargetNotConnected, the node role "
            "lacks AmazonSSMManagedInstanceCore (name \"ssm\" in `endpoints` and rerun `eksprivate up`: "
            "that attaches it)")
    return code
