"""An operator's IAM policy, enforced as AWS enforces it, when a test gives the sandbox one.

Without a policy every call is allowed (moto's behaviour, the sandbox's default). With one, each AWS request is
authorised before moto sees it:

* the action of the call (`grants.iam_action`: ec2:CreateVpc, s3:ListBucket for HeadBucket, ...) on the
  resource it acts on, where the request names it: IAM roles and instance profiles, EKS clusters, node groups,
  add-ons and access entries, CloudWatch log groups, KMS keys and aliases, ECR repositories, S3 buckets and
  objects. Elsewhere (EC2, whose ids the policy never names) any Resource of the statement matches;
* what AWS checks beside the call, with the condition keys AWS sets for it: iam:PassRole on a role handed to a
  service (iam:PassedToService), ec2:CreateTags for TagSpecifications (ec2:CreateAction), the tag action of
  the other services' tag-on-create (iam:TagRole, eks:TagResource, kms:TagResource, logs:TagResource,
  ecr:TagResource), kms:DescribeKey and kms:CreateGrant (kms:GrantIsForAWSResource) on the key of a cluster's
  secrets encryption, iam:CreateServiceLinkedRole (iam:AWSServiceName) for EKS's service-linked roles,
  route53:AssociateVPCWithHostedZone for an endpoint's private DNS, eks:CreatePodIdentityAssociation for an
  add-on's Pod Identity associations; iam:PermissionsBoundary (the boundary a CreateRole or
  PutRolePermissionsBoundary sets, else the one the role carries) and iam:PolicyARN on IAM writes.

A refusal is answered in the service's own error format, as AWS does, without reaching moto: EC2
`UnauthorizedOperation` (403), query services (IAM, STS, ELB) `AccessDenied` (403), JSON services
`AccessDeniedException` (400), REST-JSON services (EKS, EFS) `AccessDeniedException` (403), S3 and Route 53
`AccessDenied` (403); the message names the action and, where AWS does, the resource. (The sandbox's
`errors.service_error` raises inside moto's handlers; a refusal happens before them, in the WSGI layer.)

Policy evaluation is IAM's for identity policies: an explicit Deny wins, else any Allow, else denied; Action,
NotAction, Resource, NotResource; conditions StringEquals/StringLike/ArnEquals/ArnLike/Bool (IfExists too),
a missing key failing all but IfExists. Not modelled: policy variables (a `${...}` never matches), set
operators (ForAnyValue/ForAllValues), aws:ResourceTag (the policy eksprivate prints does not use it).
"""

from __future__ import annotations

import fnmatch
import io
import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from eksprivate.grants import ALWAYS_ALLOWED, iam_action

Environ = dict[str, Any]
Response = tuple[int, list[tuple[str, str]], bytes]

ACCOUNT = "123456789012"  # moto's default account: the caller of every sandbox request
CALLER = f"arn:aws:iam::{ACCOUNT}:user/operator"


@dataclass(frozen=True)
class Check:
    """One authorisation AWS makes for a request: an action, on a resource (None: any), with context keys."""

    action: str
    resource: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


# -- policy evaluation ------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    if "${" in pattern:
        return False
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
    if actual is None:
        return if_exists
    values = [str(v) for v in _as_list(wanted)]
    if op in ("StringEquals", "ArnEquals"):
        return actual in values
    if op in ("StringLike", "ArnLike"):
        return any(_glob(v, actual, case=True) for v in values)
    if op == "Bool":
        return actual.lower() in (v.lower() for v in values)
    if op == "StringNotEquals":
        return actual not in values
    return False  # an operator not modelled never allows


def _statement_matches(statement: Mapping[str, Any], check: Check) -> bool:
    if "Action" in statement:
        if not any(_glob(str(a), check.action, case=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(str(a), check.action, case=False) for a in _as_list(statement.get("NotAction", []))):
        return False
    if check.resource is not None:
        if "Resource" in statement:
            if not any(_glob(str(r), check.resource, case=True) for r in _as_list(statement["Resource"])):
                return False
        elif any(_glob(str(r), check.resource, case=True) for r in _as_list(statement.get("NotResource", []))):
            return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, check.context):
                return False
    return True


def decision(policy: Mapping[str, Any], check: Check) -> str:
    """IAM's evaluation of one identity policy, in the policy simulator's words: "explicitDeny" (a Deny matches),
    else "allowed" (an Allow matches), else "implicitDeny"."""
    statements = _as_list(policy.get("Statement", []))
    matching = [s for s in statements if _statement_matches(s, check)]
    if any(s.get("Effect") == "Deny" for s in matching):
        return "explicitDeny"
    return "allowed" if any(s.get("Effect") == "Allow" for s in matching) else "implicitDeny"


def allowed(policy: Mapping[str, Any], check: Check) -> bool:
    """IAM's evaluation of one identity policy: explicit Deny, else Allow, else implicit deny."""
    return decision(policy, check) == "allowed"


# -- reading a request ----------------------------------------------------------------------------------------


def request_body(environ: Environ) -> bytes:
    """The request body, put back for moto."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


@dataclass
class Request:
    service: str
    operation: str
    region: str
    protocol: str
    params: dict[str, Any]  # form fields (first value), or the JSON body
    path: list[str]  # the URL path's segments, unquoted
    query: dict[str, str]

    def form_list(self, prefix: str) -> list[str]:
        """EC2/query list members: `TagSpecification.1.ResourceType`, ... (the values under `prefix`)."""
        return [v for k, v in self.params.items() if k.startswith(prefix)]


def read_request(environ: Environ, service: str, operation: str, region: str | None, protocol: str) -> Request:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    path, _, query = str(raw).partition("?")
    body = request_body(environ)
    params: dict[str, Any] = {}
    if protocol in ("ec2", "query"):
        form = parse_qs(body.decode("utf-8", "replace")) or parse_qs(query)
        params = {k: v[0] for k, v in form.items()}
    elif body and protocol in ("json", "rest-json"):
        try:
            loaded = json.loads(body)
        except ValueError:
            loaded = {}
        params = loaded if isinstance(loaded, dict) else {}
    return Request(service, operation, region or "us-east-1", protocol, params,
                   [unquote(p) for p in path.split("/") if p], {k: v[0] for k, v in parse_qs(query).items()})


# -- what AWS authorises for a request ------------------------------------------------------------------------

EKS_NODEGROUP_OPS = {"DescribeNodegroup", "DeleteNodegroup", "UpdateNodegroupConfig", "UpdateNodegroupVersion"}
EKS_ADDON_OPS = {"DescribeAddon", "DeleteAddon", "UpdateAddon"}
EKS_ENTRY_OPS = {"DescribeAccessEntry", "DeleteAccessEntry", "AssociateAccessPolicy", "DisassociateAccessPolicy",
                 "ListAssociatedAccessPolicies"}
# Tags given at creation: the parameter that carries them and the action the service authorises for them.
TAG_ON_CREATE = {("iam", "CreateRole"): ("Tags.member.1.Key", "iam:TagRole"),
                 ("eks", "CreateCluster"): ("tags", "eks:TagResource"),
                 ("eks", "CreateNodegroup"): ("tags", "eks:TagResource"),
                 ("eks", "CreateAddon"): ("tags", "eks:TagResource"),
                 ("eks", "CreateAccessEntry"): ("tags", "eks:TagResource"),
                 ("kms", "CreateKey"): ("Tags", "kms:TagResource"),
                 ("logs", "CreateLogGroup"): ("tags", "logs:TagResource"),
                 ("ecr", "CreateRepository"): ("tags", "ecr:TagResource")}
SERVICE_LINKED = {"CreateCluster": ("eks.amazonaws.com", "AWSServiceRoleForAmazonEKS"),
                  "CreateNodegroup": ("eks-nodegroup.amazonaws.com", "AWSServiceRoleForAmazonEKSNodegroup")}


def _arn(service: str, region: str, resource: str, *, regional: bool = True) -> str:
    return f"arn:aws:{service}:{region if regional else ''}:{ACCOUNT}:{resource}"


def _eks_resource(req: Request) -> str | None:
    p = req.path
    if "clusters" not in p or p.index("clusters") + 1 >= len(p):
        return None
    at = p.index("clusters")
    cluster = p[at + 1]
    rest = p[at + 2:]
    sub = rest[1] if len(rest) > 1 else "x"
    if req.operation in EKS_NODEGROUP_OPS or (req.operation == "DescribeUpdate" and "nodegroupName" in req.query):
        group = sub if req.operation != "DescribeUpdate" else req.query["nodegroupName"]
        return _arn("eks", req.region, f"nodegroup/{cluster}/{group}/id")
    if req.operation in EKS_ADDON_OPS or (req.operation == "DescribeUpdate" and "addonName" in req.query):
        addon = sub if req.operation != "DescribeUpdate" else req.query["addonName"]
        return _arn("eks", req.region, f"addon/{cluster}/{addon}/id")
    if req.operation in EKS_ENTRY_OPS:
        return _arn("eks", req.region, f"access-entry/{cluster}/role/{ACCOUNT}/x/id")
    return _arn("eks", req.region, f"cluster/{cluster}")


def _kms_key(region: str, key: str) -> str:
    if key.startswith("arn:"):
        return key
    return _arn("kms", region, f"key/{key}" if not key.startswith("alias/") else "key/via-alias")


def _resource(req: Request) -> str | None:
    s, p = req.service, req.params
    if s == "iam":
        if "RoleName" in p and req.operation != "RemoveRoleFromInstanceProfile":
            # IAM authorises a call on a role by the role's ARN, its path included (a role an IAM team made
            # under /platform/ is arn:...:role/platform/<name>); one not made yet by the path CreateRole gives.
            role = _role(p["RoleName"])
            if role is not None:
                return str(role.arn)
            return _arn("iam", "", f"role{p.get('Path') or '/'}{p['RoleName']}", regional=False)
        if "InstanceProfileName" in p:
            return _arn("iam", "", f"instance-profile/{p['InstanceProfileName']}", regional=False)
        return None
    if s == "eks":
        return _eks_resource(req)
    if s == "logs" and "logGroupName" in p:
        return _arn("logs", req.region, f"log-group:{p['logGroupName']}")
    if s == "kms":
        if req.operation in ("CreateAlias", "DeleteAlias", "UpdateAlias"):
            return _arn("kms", req.region, str(p.get("AliasName", "")))
        return _kms_key(req.region, str(p["KeyId"])) if "KeyId" in p else None
    if s == "ecr" and "repositoryName" in p:
        return _arn("ecr", req.region, f"repository/{p['repositoryName']}")
    if s == "s3" and req.path:
        return "arn:aws:s3:::" + "/".join(req.path)
    return None


def _role(role_name: str) -> Any:
    """moto's role of that name, or None (the call itself then answers NoSuchEntity)."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    try:
        return iam_backends[ACCOUNT]["aws"].get_role(role_name)
    except NotFoundException:
        return None


def _role_boundary(role_name: str) -> str | None:
    role = _role(role_name)
    return None if role is None else role.permissions_boundary_arn  # type: ignore[no-any-return]


def _service_linked_role_exists(name: str) -> bool:
    return _role(name) is not None


def checks(req: Request) -> list[Check]:
    """Every authorisation AWS makes for this request, the call's own first."""
    action = iam_action(req.service, req.operation)
    if action in ALWAYS_ALLOWED:
        return []
    resource = _resource(req)
    context: dict[str, str] = {}
    p = req.params
    if req.service == "iam":
        if req.operation in ("CreateRole", "PutRolePermissionsBoundary") and p.get("PermissionsBoundary"):
            context["iam:PermissionsBoundary"] = str(p["PermissionsBoundary"])
        elif req.operation in ("PutRolePolicy", "AttachRolePolicy", "DetachRolePolicy", "DeleteRolePolicy") \
                and "RoleName" in p:
            boundary = _role_boundary(str(p["RoleName"]))
            if boundary:
                context["iam:PermissionsBoundary"] = boundary
        if "PolicyArn" in p:
            context["iam:PolicyARN"] = str(p["PolicyArn"])
    if req.service == "eks" and req.operation == "AssociateAccessPolicy" and "policyArn" in p:
        context["eks:policyArn"] = str(p["policyArn"])
    out = [Check(action, resource, context)]

    tagged = TAG_ON_CREATE.get((req.service, req.operation))
    if tagged and p.get(tagged[0]):
        out.append(Check(tagged[1], resource))
    if req.service == "ec2" and req.form_list("TagSpecification."):
        out.append(Check("ec2:CreateTags", None, {"ec2:CreateAction": req.operation}))
    if req.service == "ec2" and req.operation == "CreateVpcEndpoint" and p.get("PrivateDnsEnabled") == "true":
        out.append(Check("route53:AssociateVPCWithHostedZone"))
    passed = {("eks", "CreateCluster"): ("roleArn", "eks.amazonaws.com"),
              ("eks", "CreateNodegroup"): ("nodeRole", "eks.amazonaws.com"),
              ("ec2", "CreateFlowLogs"): ("DeliverLogsPermissionArn", "vpc-flow-logs.amazonaws.com"),
              ("eks", "CreatePodIdentityAssociation"): ("roleArn", "pods.eks.amazonaws.com")}.get(
        (req.service, req.operation))
    if passed and p.get(passed[0]):
        out.append(Check("iam:PassRole", str(p[passed[0]]), {"iam:PassedToService": passed[1]}))
    if req.service == "eks" and req.operation == "CreateAddon":
        for association in p.get("podIdentityAssociations") or []:
            # The cluster's ARN: from the body when it names the cluster, else the one the URI gave (`resource`).
            cluster = _arn("eks", req.region, f"cluster/{p['clusterName']}") if "clusterName" in p else resource
            out.append(Check("eks:CreatePodIdentityAssociation", cluster or ""))
            out.append(Check("iam:PassRole", str(association.get("roleArn", "")),
                             {"iam:PassedToService": "pods.eks.amazonaws.com"}))
    if req.service == "eks" and req.operation == "CreateCluster":
        for config in p.get("encryptionConfig") or []:
            key = _kms_key(req.region, str((config.get("provider") or {}).get("keyArn", "")))
            out += [Check("kms:DescribeKey", key),
                    Check("kms:CreateGrant", key, {"kms:GrantIsForAWSResource": "true"})]
    if req.service == "eks" and req.operation in SERVICE_LINKED:
        service, name = SERVICE_LINKED[req.operation]
        if not _service_linked_role_exists(name):  # made on first use in the account
            out.append(Check("iam:CreateServiceLinkedRole",
                             _arn("iam", "", f"role/aws-service-role/{service}/{name}", regional=False),
                             {"iam:AWSServiceName": service}))
    return out


# -- answering a refusal --------------------------------------------------------------------------------------


def denial(protocol: str, service: str, check: Check) -> Response:
    """AWS's answer to a refused call, in the error format of the request's protocol."""
    on = f" on resource: {check.resource}" if check.resource else ""
    message = (f"User: {CALLER} is not authorized to perform: {check.action}{on} because no identity-based "
               f"policy allows the {check.action} action")
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if protocol == "ec2":
        status, body = 403, (f"<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
                             f"<Message>You are not authorized to perform this operation. {_xml(message)}</Message>"
                             f"</Error></Errors><RequestID>{request_id}</RequestID></Response>")
        headers.append(("Content-Type", "text/xml"))
    elif protocol == "query":
        status, body = 403, (f"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                             f"<Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId>"
                             f"</ErrorResponse>")
        headers.append(("Content-Type", "text/xml"))
    elif protocol == "rest-xml":
        inner = f"<Code>AccessDenied</Code><Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId>"
        body = f"<Error>{inner}</Error>" if service == "s3" else (
            f"<ErrorResponse><Error><Type>Sender</Type>{inner}</Error></ErrorResponse>")
        status = 403
        headers.append(("Content-Type", "application/xml"))
    else:  # JSON protocols: 400 for JSON-RPC services (KMS, Logs, ECR...), 403 for REST-JSON (EKS, EFS)
        status = 400 if protocol == "json" else 403
        body = json.dumps({"__type": "AccessDeniedException", "message": message, "Message": message})
        headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "AccessDeniedException")]
    return status, headers, body.encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class OperatorPolicy:
    """The policy the sandbox enforces (None: everything allowed), and every refusal it made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policy: dict[str, Any] | None = None
        # A check's verdict depends only on the policy and the check: a life repeats the same few hundred
        # checks (every poll is one), and evaluating each against every statement again was ~9 % of the
        # sandbox's CPU under an enforced policy.
        self._verdicts: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], bool] = {}
        self.refused: list[Check] = []

    def set(self, policy: Mapping[str, Any] | None) -> None:
        if policy is not None and not isinstance(policy.get("Statement"), (list, dict)):
            raise ValueError("an IAM policy document needs a Statement")
        with self._lock:
            self._policy = json.loads(json.dumps(policy)) if policy is not None else None
            self._verdicts = {}
            self.refused = []

    @property
    def policy(self) -> dict[str, Any] | None:
        return self._policy

    def authorise(self, environ: Environ, service: str, operation: str, region: str | None,
                  protocol: str) -> Response | None:
        """None when allowed; else AWS's refusal of the first check the policy does not allow."""
        policy = self._policy
        if policy is None:
            return None
        req = read_request(environ, service, operation, region, protocol)
        verdicts = self._verdicts
        for check in checks(req):
            key = (check.action, check.resource, tuple(sorted(check.context.items())))
            if key not in verdicts:
                verdicts[key] = allowed(policy, check)
            if not verdicts[key]:
                with self._lock:
                    self.refused.append(check)
                return denial(protocol, service, check)
        return None


def refused_actions(refusals: Iterable[Check]) -> list[str]:
    return sorted({c.action for c in refusals})


