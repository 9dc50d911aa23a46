"""The checks: pure functions from an `Inventory` to `Check`s (no AWS calls here).

Every check names the resource it looked at and, unless it passed, a one-line fix.
docs/verify.md explains each id: what it reads, what breaks on a node with no internet, the fix.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from eksprivate.verify.discover import GONE_STATES, Inventory, launch_template_key, matches_service, service_name
from eksprivate.verify.model import Check, Status

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
WORLD = frozenset({"0.0.0.0/0", "::/0"})
PENDING_STATES = frozenset({"pending", "pendingacceptance"})

# What a node with no internet loses when the endpoint for a service is missing or unreachable.
WHY_ENDPOINT: dict[str, str] = {
    "ec2": "nodes cannot call EC2: the VPC CNI cannot manage ENIs/IPs, pods get no IPs and nodes stay NotReady",
    "ecr.api": "nodes cannot get ECR auth tokens: every image pull fails (ErrImagePull)",
    "ecr.dkr": "image pulls from ECR time out: pods stay in ImagePullBackOff and nodes NotReady",
    "sts": "STS calls time out: IRSA fails, the VPC CNI and every pod with an IAM role get no credentials",
    "logs": "node and pod logs cannot be shipped to CloudWatch Logs",
}


def _why(service: str) -> str:
    return WHY_ENDPOINT.get(service, f"calls from the nodes to {service} time out (there is no internet path)")


def check(id: str, title: str, status: Status, resource: str, detail: str, fix: str = "") -> Check:
    return Check(id=id, title=title, status=status, resource=resource, detail=detail,
                 fix="" if status == "PASS" else fix)


# -- 1. VPC DNS -------------------------------------------------------------------------------------
def vpc_dns(inv: Inventory) -> Iterator[Check]:
    yield check(
        "vpc.dns-support", "VPC DNS resolution", "PASS" if inv.dns_support else "FAIL", inv.vpc_id,
        "enableDnsSupport is on" if inv.dns_support else
        "enableDnsSupport is off: nothing in the VPC can resolve names through the Amazon DNS server",
        f"aws ec2 modify-vpc-attribute --vpc-id {inv.vpc_id} --enable-dns-support '{{\"Value\":true}}'")
    yield check(
        "vpc.dns-hostnames", "VPC DNS hostnames", "PASS" if inv.dns_hostnames else "FAIL", inv.vpc_id,
        "enableDnsHostnames is on" if inv.dns_hostnames else
        "enableDnsHostnames is off: endpoint private DNS and the private API zone do not resolve, "
        "nodes resolve AWS APIs to public IPs they cannot reach",
        f"aws ec2 modify-vpc-attribute --vpc-id {inv.vpc_id} --enable-dns-hostnames '{{\"Value\":true}}'")


# -- 10. node groups ----------------------------------------------------------------------------------
def nodegroups_present(inv: Inventory) -> Iterator[Check]:
    names = [str(ng.get("nodegroupName")) for ng in inv.nodegroups]
    if names:
        yield check("nodegroup.present", "Managed node groups", "PASS", inv.cluster_name,
                    f"{len(names)} node group(s): {', '.join(names)}")
    else:
        yield check("nodegroup.present", "Managed node groups", "WARN", inv.cluster_name,
                    "no node groups; node checks limited to cluster subnets "
                    f"({', '.join(inv.node_subnet_ids()) or 'none'})",
                    "create managed node groups (self-managed nodes and Fargate are not audited)")


# -- 2. node subnet routes ------------------------------------------------------------------------------
def subnet_routes(inv: Inventory) -> Iterator[Check]:
    s3 = service_name(inv.region, "s3")
    gateways = [e for e in inv.endpoints
                if e.get("VpcEndpointType") == "Gateway"
                and matches_service(str(e.get("ServiceName", "")), inv.region, "s3")
                and str(e.get("State", "")).lower() not in GONE_STATES]
    for sid in inv.node_subnet_ids():
        rt = inv.route_table_for(sid) if sid in inv.subnets else None
        if rt is None:
            why = "not found in " + inv.vpc_id if sid not in inv.subnets else "has no route table"
            yield check("subnet.s3-gateway", "S3 gateway endpoint on node route table", "FAIL", sid,
                        f"node subnet {why}", "check the node group and cluster subnets")
            continue
        rtb = str(rt["RouteTableId"])
        main = all(a.get("SubnetId") != sid for a in rt.get("Associations") or [])
        resource = f"{sid} / {rtb}" + (" (main)" if main else "")
        yield _s3_gateway(gateways, rtb, resource, s3)
        yield _internet_routes(rt, rtb, resource)


def _s3_gateway(gateways: list[dict[str, Any]], rtb: str, resource: str, s3: str) -> Check:
    title = "S3 gateway endpoint on node route table"
    attached = sorted((e for e in gateways if rtb in (e.get("RouteTableIds") or [])),
                      key=lambda e: str(e.get("State", "")).lower() != "available")
    if attached:
        ep = attached[0]
        state = str(ep.get("State", "")).lower()
        if state == "available":
            return check("subnet.s3-gateway", title, "PASS", resource, f"{ep['VpcEndpointId']} ({s3}) is attached")
        if state in PENDING_STATES:
            return check("subnet.s3-gateway", title, "WARN", resource,
                         f"{ep['VpcEndpointId']} ({s3}) is attached but {ep.get('State')}",
                         "wait until it is available, then rerun")
        return check("subnet.s3-gateway", title, "FAIL", resource,
                     f"{ep['VpcEndpointId']} ({s3}) is attached but {ep.get('State') or 'in no known state'}: "
                     "image layers cannot be downloaded from S3",
                     f"recreate the {s3} gateway endpoint on {rtb}")
    detail = ("no S3 gateway endpoint on this route table: image layers live in S3, "
              "so ECR pulls fail even with the ecr endpoints")
    if gateways:
        fix = (f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {gateways[0]['VpcEndpointId']} "
               f"--add-route-table-ids {rtb}")
    else:
        fix = f"aws ec2 create-vpc-endpoint --vpc-endpoint-type Gateway --service-name {s3} --route-table-ids {rtb} ..."
    return check("subnet.s3-gateway", title, "FAIL", resource, detail, fix)


def _internet_routes(rt: dict[str, Any], rtb: str, resource: str) -> Check:
    title = "No internet route from node subnet"
    bad: list[tuple[str, str, str]] = []  # (destination, target, --flag for delete-route)
    for r in rt.get("Routes") or []:
        if str(r.get("State", "")).lower() == "blackhole":
            continue  # a dead route carries nothing
        if r.get("DestinationCidrBlock"):
            dest, flag = str(r["DestinationCidrBlock"]), "--destination-cidr-block"
        elif r.get("DestinationIpv6CidrBlock"):
            dest, flag = str(r["DestinationIpv6CidrBlock"]), "--destination-ipv6-cidr-block"
        else:
            dest, flag = str(r.get("DestinationPrefixListId", "?")), "--destination-prefix-list-id"
        target = next((str(r[k]) for k in ("GatewayId", "NatGatewayId", "EgressOnlyInternetGatewayId",
                                           "TransitGatewayId", "NetworkInterfaceId", "InstanceId",
                                           "VpcPeeringConnectionId", "CarrierGatewayId", "LocalGatewayId",
                                           "CoreNetworkArn") if r.get(k)), "?")
        if (target.startswith(("igw-", "nat-", "eigw-")) or r.get("NatGatewayId")
                or r.get("EgressOnlyInternetGatewayId") or dest in WORLD):
            bad.append((dest, target, flag))
    if not bad:
        return check("subnet.no-internet-route", title, "PASS", resource,
                     "no route to an internet or NAT gateway, no default route")
    routes = ", ".join(f"{d} → {t}" for d, t, _ in bad)
    first = bad[0]
    return check("subnet.no-internet-route", title, "FAIL", resource,
                 f"route(s) {routes}: nodes in this subnet can reach the internet, so the cluster is not private",
                 f"aws ec2 delete-route --route-table-id {rtb} {first[2]} {first[0]}"
                 + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


# -- 3. interface endpoints -------------------------------------------------------------------------------
def endpoints(inv: Inventory) -> Iterator[Check]:
    node_azs = inv.node_azs()
    for svc in inv.services:
        full = service_name(inv.region, svc)
        ep = inv.interface_endpoint(svc)
        if ep is None:
            other = inv.service_endpoints(svc)
            extra = (f" ({other[0]['VpcEndpointId']} is a {other[0].get('VpcEndpointType')} endpoint)"
                     if other else "")
            yield check("endpoint.available", f"Interface endpoint {svc}", "FAIL", f"{svc} (none in {inv.vpc_id})",
                        f"no interface endpoint for {full}{extra}: {_why(svc)}",
                        f"create an Interface endpoint for {full} in {inv.vpc_id}, private DNS on, "
                        "one subnet per node AZ")
            continue
        epid = str(ep["VpcEndpointId"])
        resource = f"{epid} ({svc})"
        state = str(ep.get("State", "")).lower()
        if state == "available":
            yield check("endpoint.available", f"Interface endpoint {svc}", "PASS", resource, "available")
        elif state in PENDING_STATES:
            yield check("endpoint.available", f"Interface endpoint {svc}", "WARN", resource,
                        f"state {ep.get('State')}: not usable yet ({_why(svc)})",
                        "wait about 2 minutes for it to become available (or accept it), then rerun")
        else:
            yield check("endpoint.available", f"Interface endpoint {svc}", "FAIL", resource,
                        f"state {ep.get('State') or 'unknown'}: {_why(svc)}",
                        f"recreate the {full} endpoint")

        if ep.get("PrivateDnsEnabled"):
            yield check("endpoint.private-dns", f"Private DNS for {svc}", "PASS", resource, "private DNS is on")
        else:
            yield check("endpoint.private-dns", f"Private DNS for {svc}", "FAIL", resource,
                        f"private DNS is off: the nodes resolve the public {svc} name and cannot reach it; "
                        f"{_why(svc)}",
                        f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {epid} --private-dns-enabled")

        ep_azs = {str(inv.subnets[s]["AvailabilityZone"]) for s in ep.get("SubnetIds") or [] if s in inv.subnets}
        missing = [az for az in node_azs if az not in ep_azs]
        if not missing:
            yield check("endpoint.azs", f"{svc} endpoint in every node AZ", "PASS", resource,
                        f"in {', '.join(sorted(ep_azs)) or 'no AZ'}; nodes in {', '.join(node_azs) or 'no AZ'}")
        else:
            per_az: dict[str, str] = {}  # an endpoint takes one subnet per AZ
            for s in inv.node_subnet_ids():
                if s in inv.subnets:
                    per_az.setdefault(str(inv.subnets[s]["AvailabilityZone"]), s)
            want = [per_az[az] for az in missing]
            yield check("endpoint.azs", f"{svc} endpoint in every node AZ", "FAIL", resource,
                        f"no endpoint subnet in node AZ {', '.join(missing)}: calls from nodes there cross AZs "
                        "and fail when that AZ is cut off",
                        f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {epid} --add-subnet-ids {' '.join(want)}")


# -- 4. endpoint security groups admit 443 from the nodes ----------------------------------------------------
def _covers_443(perm: dict[str, Any]) -> bool:
    proto = str(perm.get("IpProtocol", ""))
    if proto == "-1":
        return True
    if proto not in ("tcp", "6"):
        return False
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    return lo is not None and hi is not None and int(lo) <= 443 <= int(hi)


def _supernet(rule: str, cidr: str) -> bool:
    try:
        a, b = ipaddress.ip_network(rule, strict=False), ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]


def endpoint_sgs(inv: Inventory) -> Iterator[Check]:
    node_cidrs = {s: str(inv.subnets[s]["CidrBlock"]) for s in inv.node_subnet_ids() if s in inv.subnets}
    for svc in inv.services:
        ep = inv.interface_endpoint(svc)
        if ep is None:
            continue  # endpoint.available already failed
        epid = str(ep["VpcEndpointId"])
        groups = [str(g["GroupId"]) for g in ep.get("Groups") or [] if g.get("GroupId")]
        resource = f"{epid} ({svc}) / {', '.join(groups) or 'no security group'}"
        title = f"{svc} endpoint admits HTTPS from nodes"
        cidrs: list[str] = []
        sg_refs: list[str] = []
        prefix_lists: list[str] = []
        for gid in groups:
            for perm in (inv.security_groups.get(gid) or {}).get("IpPermissions") or []:
                if not _covers_443(perm):
                    continue
                cidrs += [str(r["CidrIp"]) for r in perm.get("IpRanges") or [] if r.get("CidrIp")]
                cidrs += [str(r["CidrIpv6"]) for r in perm.get("Ipv6Ranges") or [] if r.get("CidrIpv6")]
                sg_refs += [str(p["GroupId"]) for p in perm.get("UserIdGroupPairs") or [] if p.get("GroupId")]
                prefix_lists += [str(p["PrefixListId"]) for p in perm.get("PrefixListIds") or []
                                 if p.get("PrefixListId")]
        gone = [g for g in groups if g not in inv.security_groups]
        uncovered = {s: c for s, c in node_cidrs.items() if not any(_supernet(r, c) for r in cidrs)}
        if not uncovered and node_cidrs:
            yield check("endpoint.sg-443", title, "PASS", resource,
                        f"TCP 443 from {', '.join(sorted(set(cidrs)))} covers every node subnet")
            continue
        if sg_refs:
            yield check("endpoint.sg-443", title, "PASS", resource,
                        f"TCP 443 from security group {', '.join(sorted(set(sg_refs)))} "
                        "(the nodes must carry it; not verifiable from here)")
            continue
        missing = ", ".join(f"{s} ({c})" for s, c in uncovered.items()) or "the node subnets"
        if prefix_lists:
            yield check("endpoint.sg-443", title, "WARN", resource,
                        f"TCP 443 only from prefix list {', '.join(sorted(set(prefix_lists)))}; "
                        f"cannot tell whether it covers {missing}",
                        f"admit TCP 443 from the node subnet CIDRs on {groups[0] if groups else 'the endpoint SG'}")
            continue
        why = f"security group {', '.join(gone)} not found; " if gone else ""
        target = groups[0] if groups else "<endpoint security group>"
        first = next(iter(uncovered.values()), "<node subnet CIDR>")
        yield check("endpoint.sg-443", title, "FAIL", resource,
                    f"{why}no rule admits TCP 443 from {missing}: calls to {svc} are black-holed "
                    f"({_why(svc)}; cf. amazon-vpc-cni-k8s #1847)",
                    f"aws ec2 authorize-security-group-ingress --group-id {target} --protocol tcp --port 443 "
                    f"--cidr {first} (or the VPC CIDR)")


# -- 5. cluster API endpoint access --------------------------------------------------------------------------
def api_access(inv: Inventory) -> Iterator[Check]:
    cfg, name = inv.vpc_config, inv.cluster_name
    resource = f"cluster {name}"
    update = f"aws eks update-cluster-config --name {name} --region {inv.region} --resources-vpc-config"
    if cfg.get("endpointPrivateAccess"):
        yield check("cluster.private-access", "Private API endpoint", "PASS", resource, "private endpoint access is on")
    else:
        yield check("cluster.private-access", "Private API endpoint", "FAIL", resource,
                    "private endpoint access is off: nodes can only reach the API server over the internet, "
                    "which they do not have, so they never join",
                    f"{update} endpointPrivateAccess=true")
    if not cfg.get("endpointPublicAccess"):
        yield check("cluster.public-access", "Public API endpoint", "PASS", resource, "public endpoint access is off")
        return
    cidrs = [str(c) for c in cfg.get("publicAccessCidrs") or ["0.0.0.0/0"]]
    if any(c in WORLD for c in cidrs):
        yield check("cluster.public-access", "Public API endpoint", "FAIL", resource,
                    f"the Kubernetes API is public to the whole internet ({', '.join(cidrs)})",
                    f"{update} endpointPublicAccess=false (or publicAccessCidrs=<your office/VPN CIDRs>)")
    else:
        yield check("cluster.public-access", "Public API endpoint", "WARN", resource,
                    f"the Kubernetes API is also public, limited to {', '.join(cidrs)}",
                    f"{update} endpointPublicAccess=false once you reach the VPC (VPN, bastion, SSM)")


# -- 6. control-plane logging ------------------------------------------------------------------------------
def logging(inv: Inventory) -> Iterator[Check]:
    on: set[str] = set()
    for entry in (inv.cluster.get("logging") or {}).get("clusterLogging") or []:
        if entry.get("enabled"):
            on.update(str(t) for t in entry.get("types") or [])
    missing = [t for t in LOG_TYPES if t not in on]
    name = inv.cluster_name
    fix = (f"aws eks update-cluster-config --name {name} --region {inv.region} --logging "
           f"'{{\"clusterLogging\":[{{\"types\":[{','.join(chr(34) + t + chr(34) for t in missing)}],"
           "\"enabled\":true}]}'")
    if not missing:
        yield check("cluster.logging", "Control-plane logging", "PASS", f"cluster {name}", "all five log types on")
    elif len(missing) < len(LOG_TYPES):
        yield check("cluster.logging", "Control-plane logging", "WARN", f"cluster {name}",
                    f"off: {', '.join(missing)}", fix)
    else:
        yield check("cluster.logging", "Control-plane logging", "FAIL", f"cluster {name}",
                    "no control-plane log type is on: no audit trail of the API server", fix)


# -- 7. secrets envelope encryption ----------------------------------------------------------------------------
def encryption(inv: Inventory) -> Iterator[Check]:
    name = inv.cluster_name
    for cfg in inv.cluster.get("encryptionConfig") or []:
        if "secrets" in (cfg.get("resources") or []):
            key = (cfg.get("provider") or {}).get("keyArn", "a KMS key")
            yield check("cluster.secrets-encryption", "Secrets envelope encryption", "PASS", f"cluster {name}",
                        f"secrets are encrypted with {key}")
            return
    yield check("cluster.secrets-encryption", "Secrets envelope encryption", "FAIL", f"cluster {name}",
                "Kubernetes secrets are not envelope-encrypted with a KMS key",
                f"aws eks associate-encryption-config --cluster-name {name} --region {inv.region} --encryption-config "
                "'[{\"resources\":[\"secrets\"],\"provider\":{\"keyArn\":\"<KMS key ARN>\"}}]'")


# -- 7b. support type (upgrade policy) --------------------------------------------------------------------------
def support_type(inv: Inventory) -> Iterator[Check]:
    name = inv.cluster_name
    support = (inv.cluster.get("upgradePolicy") or {}).get("supportType")
    if support is None:
        return  # EKS did not say (an answer from before upgrade policies): nothing to judge
    title = "Support type (upgrade policy)"
    past = str((inv.version_info or {}).get("versionStatus") or "") in ("EXTENDED_SUPPORT", "UNSUPPORTED")
    if support == "STANDARD" and past:
        yield check("cluster.support-type", title, "PASS", f"cluster {name}",
                    f"STANDARD: Kubernetes {inv.cluster.get('version', '')} is past standard support, so EKS upgrades "
                    "the control plane automatically (not billed at the extended-support rate)")
    elif support == "STANDARD":
        yield check("cluster.support-type", title, "PASS", f"cluster {name}",
                    "STANDARD: AWS upgrades the cluster at the end of standard support, no extended-support charge")
    else:
        yield check("cluster.support-type", title, "WARN", f"cluster {name}",
                    f"{support}: once Kubernetes {inv.cluster.get('version', '')} leaves standard support the control "
                    "plane is billed at the extended-support rate (about 6x the standard price) until upgraded",
                    f"aws eks update-cluster-config --name {name} --region {inv.region} --upgrade-policy "
                    "supportType=STANDARD (possible while the version is still in standard support)")


# -- 7c. Kubernetes version support ----------------------------------------------------------------------------
SUPPORT_WARN_DAYS = 60  # warn this long before the end of standard support: time to plan an upgrade


def version_support(inv: Inventory) -> Iterator[Check]:
    """The version's support status (DescribeClusterVersions) and its end-of-standard-support date."""
    if not inv.version_info:
        return  # not readable (no eks:DescribeClusterVersions): nothing to judge
    name = inv.cluster_name
    status, detail = support_judgement(str(inv.cluster.get("version", "")), inv.version_info, inv.today,
                                       (inv.cluster.get("upgradePolicy") or {}).get("supportType"))
    fix = (f"raise kubernetes_version one minor at a time and run `eksprivate up` (or `aws eks update-cluster-version "
           f"--name {name} --region {inv.region} --kubernetes-version <next>`)")
    yield check("cluster.version-support", "Kubernetes version support", status, f"cluster {name}", detail,
                fix if status != "PASS" else "")


def support_judgement(version: str, info: dict[str, Any], today: dt.date,
                      support_type: str | None = None) -> tuple[Status, str]:
    """PASS in standard support more than SUPPORT_WARN_DAYS from its end; WARN nearer, or past it (also what
    `status` prints). Past it with support type STANDARD, EKS upgrades the control plane itself ("If the
    cluster is set to STANDARD, it will be automatically upgraded at the end of standard support": EKS API
    reference, UpgradePolicyResponse): said, since the node groups and add-ons stay behind."""
    status = str(info.get("versionStatus") or info.get("status") or "").upper().replace("-", "_")
    end = _day(info.get("endOfStandardSupportDate"))
    extended_end = _day(info.get("endOfExtendedSupportDate"))
    if status == "STANDARD_SUPPORT" and end is not None and (end - today).days > SUPPORT_WARN_DAYS:
        return "PASS", f"Kubernetes {version}: standard support until {end.isoformat()}"
    if status == "STANDARD_SUPPORT":
        left = f"{(end - today).days} days left" if end is not None else "end date unknown"
        return "WARN", (f"Kubernetes {version}: standard support ends {end.isoformat() if end else '?'} ({left}); "
                        "then EXTENDED support bills about 6x, STANDARD has AWS upgrade the cluster")
    ended = f"standard support ended {end.isoformat() if end else '?'}"
    if support_type == "STANDARD" and status in ("EXTENDED_SUPPORT", "UNSUPPORTED"):
        return "WARN", (f"Kubernetes {version}: {ended}; support type STANDARD: EKS upgrades the control plane "
                        "automatically to the next minor (node groups and add-ons stay behind until upgraded)")
    until = f" until {extended_end.isoformat()}" if extended_end else ""
    return "WARN", f"Kubernetes {version}: {status or 'unknown status'}{until} ({ended})"


def _day(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).date()
    return None


# -- 8. node IMDSv2 ------------------------------------------------------------------------------------------
def imds(inv: Inventory) -> Iterator[Check]:
    title = "Nodes require IMDSv2"
    lt_fix = ("use a launch template version with MetadataOptions HttpTokens=required, HttpPutResponseHopLimit=1 "
              "and update the node group to it")
    for ng in inv.nodegroups:
        name = str(ng.get("nodegroupName"))
        key = launch_template_key(ng)
        if key is None:
            yield check("nodegroup.imdsv2", title, "WARN", name,
                        f"no launch template ({ng.get('amiType', 'unknown AMI')}): the node group does not force "
                        "IMDSv2 (EKS's default template leaves AL2 nodes accepting IMDSv1)", lt_fix)
            continue
        resource = f"{name} / {key[0]} v{key[1]}"
        data = inv.launch_templates.get(key, "not read")
        if isinstance(data, str):
            yield check("nodegroup.imdsv2", title, "FAIL", resource, f"launch template {data}", lt_fix)
            continue
        meta = data.get("MetadataOptions") or {}
        tokens = meta.get("HttpTokens")
        hop = meta.get("HttpPutResponseHopLimit")
        if tokens != "required":
            yield check("nodegroup.imdsv2", title, "FAIL", resource,
                        f"HttpTokens is {tokens or 'not set'}: IMDSv1 is allowed, so an SSRF bug in any pod "
                        "can read the node role's credentials", lt_fix)
        elif hop is not None and int(hop) > 2:
            yield check("nodegroup.imdsv2", title, "WARN", resource,
                        f"HttpTokens required, but hop limit {hop}: containers can reach the instance metadata",
                        "set HttpPutResponseHopLimit to 1 (2 only if pods must use IMDS) in a new template version")
        else:
            yield check("nodegroup.imdsv2", title, "PASS", resource,
                        f"HttpTokens required, hop limit {hop if hop is not None else 'default'}")


# -- 9. no security group open to the world ------------------------------------------------------------------
def _rule_text(perm: dict[str, Any]) -> str:
    proto = str(perm.get("IpProtocol", ""))
    if proto == "-1":
        return "all traffic"
    lo, hi = perm.get("FromPort"), perm.get("ToPort")
    ports = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{proto} {ports}"


def world_ingress(inv: Inventory) -> Iterator[Check]:
    title = "No security group open to the internet"
    ids = inv.audited_sg_ids()
    bad = False
    for gid in ids:
        sg = inv.security_groups.get(gid)
        if sg is None:
            continue  # endpoint.sg-443 reports missing endpoint SGs; a gone cluster SG admits nothing
        opened: list[tuple[dict[str, Any], str]] = []
        for perm in sg.get("IpPermissions") or []:
            sources = [str(r.get("CidrIp")) for r in perm.get("IpRanges") or []]
            sources += [str(r.get("CidrIpv6")) for r in perm.get("Ipv6Ranges") or []]
            opened += [(perm, src) for src in sources if src in WORLD]
        if opened:
            bad = True
            rules = ", ".join(f"{_rule_text(p)} from {s}" for p, s in opened)
            perm, src = opened[0]
            ranges = f"Ipv6Ranges=[{{CidrIpv6={src}}}]" if ":" in src else f"IpRanges=[{{CidrIp={src}}}]"
            ports = (f",FromPort={perm['FromPort']},ToPort={perm['ToPort']}"
                     if perm.get("FromPort") is not None and perm.get("ToPort") is not None else "")
            more = f" (and {len(opened) - 1} more)" if len(opened) > 1 else ""
            yield check("sg.no-world-ingress", title, "FAIL", gid,
                        f"ingress {rules}: anyone who can route to it may connect",
                        f"aws ec2 revoke-security-group-ingress --group-id {gid} --ip-permissions "
                        f"'IpProtocol={perm.get('IpProtocol')}{ports},{ranges}'{more}; "
                        "admit the VPC CIDR or a security group instead")
    if not bad:
        found = [g for g in ids if g in inv.security_groups]
        yield check("sg.no-world-ingress", title, "PASS", ", ".join(found) or "no security group",
                    f"{len(found)} security group(s) of the cluster and its endpoints: none admits 0.0.0.0/0 or ::/0")


# -- 11. endpoint policies: the data perimeter ------------------------------------------------------------------
def endpoint_policies(inv: Inventory) -> Iterator[Check]:
    """Each endpoint of the VPC (interface and gateway), judged by what its policy allows an intruder
    (eksprivate/perimeter.py `openings`) and whether it still lets the nodes work (`blocked_needs`)."""
    from eksprivate.endpoint_services import short_name
    from eksprivate.partitions import of_arn
    from eksprivate.perimeter import ECR_SERVICES, Perimeter, blocked_needs, openings
    from eksprivate.policy_eval import Unjudged

    arn = str(inv.cluster.get("arn") or "")
    if not arn.startswith("arn:"):
        return  # no ARN to take the account from (a stand-in): nothing to judge against
    partition, account = of_arn(arn), arn.split(":")[4]
    drawn = Perimeter(partition=partition, region=inv.region, account=account)
    for ep in sorted(inv.endpoints, key=lambda e: str(e.get("VpcEndpointId"))):
        # Every endpoint of the VPC, not only the audited services': each one is a way out of the network.
        svc = short_name(str(ep.get("ServiceName", "")), inv.region)
        if svc is None or str(ep.get("State", "")).lower() in GONE_STATES:
            continue
        epid = str(ep["VpcEndpointId"])
        resource, title = f"{epid} ({svc})", f"Endpoint policy of {svc}"
        policy = ep.get("PolicyDocument")
        try:
            found = openings(policy, svc, account, partition, inv.region)
            blocked = blocked_needs(policy, svc, drawn)
        except (Unjudged, ValueError) as exc:
            yield check("endpoint.policy", title, "WARN", resource, f"the policy is not judged: {exc}",
                        "review it by hand against docs/security.md")
            continue
        fix = ("set a data-perimeter policy (eksprivate writes one by default: docs/security.md): "
               f"aws ec2 modify-vpc-endpoint --vpc-endpoint-id {epid} --policy-document file://policy.json")
        if blocked:
            yield check("endpoint.policy", title, "FAIL", resource,
                        f"the policy refuses what the nodes need: {'; '.join(blocked)}",
                        "allow it (docs/security.md lists what the nodes need through each endpoint)")
        if found:
            exfiltration = svc in ("s3", *ECR_SERVICES) and any(o.kind == "resource" for o in found)
            yield check("endpoint.policy", title, "FAIL" if exfiltration else "WARN", resource,
                        f"open: {'; '.join(o.text for o in found)}", fix)
        elif not blocked:
            yield check("endpoint.policy", title, "PASS", resource,
                        "a perimeter: only this account's (and trusted) principals and resources, and the AWS-owned "
                        "resources the nodes need")


ALL: tuple[Callable[[Inventory], Iterable[Check]], ...] = (
    vpc_dns, nodegroups_present, subnet_routes, endpoints, endpoint_sgs, api_access, logging, encryption,
    support_type, version_support, imds,
    world_ingress, endpoint_policies,
)


def all_checks(inv: Inventory) -> list[Check]:
    return [c for fn in ALL for c in fn(inv)]
