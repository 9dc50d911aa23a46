"""The sandbox's models of the ECR pull-through-cache API and of the Price List / Spot history answers.

Plain moto answers the pull-through operations with HTTP 500, has no Price List, and prices Spot at
0.00001 with a 2006 timestamp; each test says what plain moto (the naive stand-in) would do.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from .helpers import REGION, ClientFactory


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_rules_are_created_described_updated_and_deleted(client: ClientFactory, name: str) -> None:
    """Plain moto: HTTP 500 on every call below."""
    ecr = client("ecr")
    made = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=name, upstreamRegistryUrl="registry.k8s.io")
    assert made["upstreamRegistry"] == "k8s" and made["ecrRepositoryPrefix"] == name
    listed = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[name])["pullThroughCacheRules"]
    assert [r["upstreamRegistryUrl"] for r in listed] == ["registry.k8s.io"]
    with pytest.raises(ClientError) as again:
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=name, upstreamRegistryUrl="quay.io")
    assert _code(again) == "PullThroughCacheRuleAlreadyExistsException"
    ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=name)
    with pytest.raises(ClientError) as gone:
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=name)
    assert _code(gone) == "PullThroughCacheRuleNotFoundException"


@pytest.mark.parametrize(("url", "credential", "code"), [
    ("registry-1.docker.io", None, "InvalidParameterException"),  # Docker Hub needs credentials
    ("ghcr.io", f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gh-token-AbCdEf", "InvalidParameterException"),
    ("registry.gitlab.com", f"arn:aws:secretsmanager:{REGION}:123456789012:secret:ecr-pullthroughcache/none-AbCdEf",
     "SecretNotFoundException"),
    ("example.com", None, "UnsupportedUpstreamRegistryException"),
])
def test_what_aws_refuses_is_refused(client: ClientFactory, name: str, url: str, credential: str | None,
                                     code: str) -> None:
    args = {"ecrRepositoryPrefix": name, "upstreamRegistryUrl": url}
    if credential:
        args["credentialArn"] = credential
    with pytest.raises(ClientError) as refused:
        client("ecr").create_pull_through_cache_rule(**args)
    assert _code(refused) == code


def test_validation_reads_the_secret(client: ClientFactory, name: str) -> None:
    good = client("secretsmanager").create_secret(
        Name=f"ecr-pullthroughcache/{name}-good", SecretString=json.dumps({"username": "u", "accessToken": "t"}))
    bad = client("secretsmanager").create_secret(Name=f"ecr-pullthroughcache/{name}-bad", SecretString="token")
    ecr = client("ecr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=name, upstreamRegistryUrl="registry-1.docker.io",
                                       credentialArn=good["ARN"])
    assert ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=name)["isValid"] is True
    ecr.update_pull_through_cache_rule(ecrRepositoryPrefix=name, credentialArn=bad["ARN"])
    answer = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=name)
    assert answer["isValid"] is False and answer["failure"]
    ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=name)


def test_price_list_answers_in_its_json_string_format(client: ClientFactory) -> None:
    """Plain moto cannot route the pricing service at all."""
    pricing = client("pricing")
    answer = pricing.get_products(ServiceCode="AmazonEC2", FormatVersion="aws_v1", Filters=[
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": REGION},
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "t3.small"}])
    assert answer["FormatVersion"] == "aws_v1" and all(isinstance(item, str) for item in answer["PriceList"])
    product = json.loads(answer["PriceList"][0])
    assert product["product"]["attributes"]["usagetype"] == "EUC1-BoxUsage:t3.small"
    [term] = product["terms"]["OnDemand"].values()
    [dimension] = term["priceDimensions"].values()
    assert dimension["unit"] == "Hrs" and dimension["pricePerUnit"] == {"USD": "0.0240000000"}
    none = pricing.get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "x9.huge"}])
    assert none["PriceList"] == []


def test_spot_history_is_recent_and_differs_per_az(client: ClientFactory) -> None:
    """Plain moto: 0.00001 everywhere, stamped 2006."""
    history = client("ec2").describe_spot_price_history(InstanceTypes=["t3.small"])["SpotPriceHistory"]
    assert history
    day_ago = datetime.now(timezone.utc) - timedelta(days=1)
    assert all(entry["Timestamp"] > day_ago for entry in history)
    per_az = {e["AvailabilityZone"]: float(e["SpotPrice"]) for e in history if e["Timestamp"] > day_ago}
    assert len(set(per_az.values())) > 1 and all(p > 0.001 for p in per_az.values())
