"""ECR pull-through cache rules for moto, which has none (moto 5.2 answers HTTP 500 in server mode).

Adds CreatePullThroughCacheRule, DescribePullThroughCacheRules, DeletePullThroughCacheRule,
UpdatePullThroughCacheRule and ValidatePullThroughCacheRule to moto's ECR responses, with the rules AWS
applies (botocore's ECR model and the ECR user guide, "Creating a pull through cache rule"):

* the prefix is 2-30 characters of the model's pattern, one rule per prefix per registry
  (PullThroughCacheRuleAlreadyExistsException);
* each upstream has one documented registry URL; Docker Hub, GitHub, GitLab and Azure need a
  `credentialArn`, a Secrets Manager secret named `ecr-pullthroughcache/...` in the same account and
  Region, which must exist (SecretNotFoundException);
* ValidatePullThroughCacheRule reads the secret: valid when it holds `username` and `accessToken`.

The sandbox cannot reach an upstream, so it never creates cache repositories by itself; tests create them
(CreateRepository `<prefix>/<name>`) as ECR would on a first pull. Rules live on moto's ECR backend object,
so a reset of moto forgets them. moto is imported inside functions only.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from eksprivate.sandbox.errors import service_error

if TYPE_CHECKING:
    from eksprivate.sandbox.core.patching import Patcher

# botocore ECR model: PullThroughCacheRuleRepositoryPrefix, UpstreamRegistry, the upstreamRegistryUrl docs.
PREFIX_RE = re.compile(r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$")
REGISTRY_URLS = {
    "ecr-public": "public.ecr.aws", "quay": "quay.io", "k8s": "registry.k8s.io",
    "docker-hub": "registry-1.docker.io", "github-container-registry": "ghcr.io",
    "gitlab-container-registry": "registry.gitlab.com",
}
NEEDS_CREDENTIALS = {"docker-hub", "github-container-registry", "gitlab-container-registry",
                     "azure-container-registry"}
CREDENTIAL_RE = re.compile(r"^arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache\/"
                           r"[a-zA-Z0-9\/_+=.@-]+$")
_RULES = "_sandbox_pull_through_rules"


def _rules(response: Any) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = vars(response.ecr_backend).setdefault(_RULES, {})
    return rules


def _registry_of(url: str) -> str | None:
    for registry, known in REGISTRY_URLS.items():
        if url == known:
            return registry
    if url.endswith(".azurecr.io"):
        return "azure-container-registry"
    return None


def _secret(response: Any, arn: str) -> Any:
    """The secret behind `arn` in the rule's own account and Region (AWS requires both to match)."""
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[response.current_account][response.region]
    try:
        return backend.describe_secret(arn)
    except Exception:
        raise service_error("SecretNotFoundException",
                     f"The secret {arn} could not be found in {response.region}.") from None


def _check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str) or not 2 <= len(prefix) <= 30 or not PREFIX_RE.match(prefix):
        raise service_error("InvalidParameterException",
                     f"Invalid parameter at 'ecrRepositoryPrefix' failed to satisfy constraint: {prefix!r}")
    return prefix.rstrip("/")


def _check_credential(response: Any, arn: str) -> None:
    if not CREDENTIAL_RE.match(arn):
        raise service_error("InvalidParameterException",
                     "Invalid parameter at 'credentialArn' failed to satisfy constraint: "
                     "must be a Secrets Manager secret ARN whose name begins with ecr-pullthroughcache/")
    _secret(response, arn)


def _create(self: Any) -> Any:
    from moto.core.responses import ActionResult

    prefix = _check_prefix(self._get_param("ecrRepositoryPrefix"))
    url = self._get_param("upstreamRegistryUrl") or ""
    registry = _registry_of(url)
    if registry is None:
        raise service_error("UnsupportedUpstreamRegistryException",
                     f"The specified upstream registry {url} is not supported.")
    named = self._get_param("upstreamRegistry")
    if named and named != registry:
        raise service_error("InvalidParameterException", f"upstreamRegistry {named} does not match {url}.")
    credential = self._get_param("credentialArn")
    if registry in NEEDS_CREDENTIALS and not credential:
        raise service_error("InvalidParameterException",
                     f"A credentialArn is required for the upstream registry {registry}.")
    if credential:
        _check_credential(self, credential)
    rules = _rules(self)
    if prefix in rules:
        raise service_error("PullThroughCacheRuleAlreadyExistsException",
                     f"A pull through cache rule with prefix '{prefix}' already exists for the private registry.")
    rule = {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": url, "createdAt": datetime.now(timezone.utc),
            "registryId": self.current_account, "upstreamRegistry": registry,
            "upstreamRepositoryPrefix": "ROOT"}
    if credential:
        rule["credentialArn"] = credential
    rules[prefix] = rule
    return ActionResult(dict(rule))


def _describe(self: Any) -> Any:
    from moto.core.responses import ActionResult

    wanted = self._get_param("ecrRepositoryPrefixes")
    rules = _rules(self)
    if wanted:
        missing = [p for p in wanted if p.rstrip("/") not in rules]
        if missing:
            raise service_error("PullThroughCacheRuleNotFoundException",
                         f"The pull through cache rule with prefix '{missing[0]}' does not exist in the registry "
                         f"with id '{self.current_account}'")
        found = [rules[p.rstrip("/")] for p in wanted]
    else:
        found = list(rules.values())
    return ActionResult({"pullThroughCacheRules": [dict(r) for r in found]})


def _existing(self: Any) -> dict[str, Any]:
    prefix = _check_prefix(self._get_param("ecrRepositoryPrefix"))
    rule = _rules(self).get(prefix)
    if rule is None:
        raise service_error("PullThroughCacheRuleNotFoundException",
                     f"The pull through cache rule with prefix '{prefix}' does not exist in the registry with id "
                     f"'{self.current_account}'")
    return rule


def _delete(self: Any) -> Any:
    from moto.core.responses import ActionResult

    rule = _existing(self)
    del _rules(self)[rule["ecrRepositoryPrefix"]]
    return ActionResult({k: v for k, v in rule.items() if k != "upstreamRegistry"})


def _update(self: Any) -> Any:
    from moto.core.responses import ActionResult

    rule = _existing(self)
    credential = self._get_param("credentialArn")
    if credential:
        _check_credential(self, credential)
        rule["credentialArn"] = credential
    return ActionResult({"ecrRepositoryPrefix": rule["ecrRepositoryPrefix"], "registryId": rule["registryId"],
                         "updatedAt": datetime.now(timezone.utc), "credentialArn": rule.get("credentialArn"),
                         "upstreamRepositoryPrefix": rule["upstreamRepositoryPrefix"]})


def _validate(self: Any) -> Any:
    """AWS reads the secret and signs in upstream; the sandbox checks the secret's documented shape."""
    from moto.core.responses import ActionResult

    rule = _existing(self)
    failure = ""
    arn = rule.get("credentialArn")
    if arn:
        try:
            secret = _secret(self, arn)
            from moto.secretsmanager.models import secretsmanager_backends

            value = secretsmanager_backends[self.current_account][self.region].get_secret_value(
                secret.arn, "", "").get("SecretString") or ""
            data = json.loads(value)
            if not isinstance(data, dict) or not data.get("username") or not data.get("accessToken"):
                failure = "The secret does not contain a username and an accessToken."
        except json.JSONDecodeError:
            failure = "The secret is not JSON with a username and an accessToken."
        except Exception as exc:  # SecretNotFoundException from _secret
            failure = str(getattr(exc, "message", exc))
    result = {"ecrRepositoryPrefix": rule["ecrRepositoryPrefix"], "registryId": rule["registryId"],
              "upstreamRegistryUrl": rule["upstreamRegistryUrl"], "upstreamRepositoryPrefix": "ROOT",
              "isValid": not failure}
    if arn:
        result["credentialArn"] = arn
    if failure:
        result["failure"] = failure
    return ActionResult(result)


_RESPONSES = {
    "create_pull_through_cache_rule": _create,
    "describe_pull_through_cache_rules": _describe,
    "delete_pull_through_cache_rule": _delete,
    "update_pull_through_cache_rule": _update,
    "validate_pull_through_cache_rule": _validate,
}


def install(patcher: Patcher) -> None:
    """Add the operations to moto's ECR responses (listed in `families.FAMILIES`)."""
    from moto.ecr.responses import ECRResponse

    for name, method in _RESPONSES.items():
        patcher.set_attr(ECRResponse, name, method)
