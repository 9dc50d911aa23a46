"""`verify`'s Kubernetes version support check: the status and end-of-standard-support date EKS gives
(DescribeClusterVersions), WARN within 60 days of it. Naive code reports the version only, or judges it by a
table shipped with the tool instead of AWS's dates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from eksprivate.verify.checks import version_support
from tests.verify.test_verify_checks import healthy

TODAY = dt.date(2026, 6, 1)


def _info(status: str, end: dt.date) -> dict[str, Any]:
    return {"clusterVersion": "1.33", "versionStatus": status,
            "endOfStandardSupportDate": dt.datetime.combine(end, dt.time(), dt.timezone.utc),
            "endOfExtendedSupportDate": dt.datetime.combine(end.replace(year=end.year + 1), dt.time(), dt.timezone.utc)}


def _judge(info: dict[str, Any] | None) -> list[tuple[str, str]]:
    inv = healthy()
    inv.cluster["version"] = "1.33"
    inv.version_info, inv.today = info, TODAY
    return [(c.status, c.detail) for c in version_support(inv)]


def test_far_from_the_end_of_standard_support_passes_naming_the_date() -> None:
    [(status, detail)] = _judge(_info("STANDARD_SUPPORT", TODAY + dt.timedelta(days=61)))
    assert status == "PASS" and "until 2026-08-01" in detail


def test_within_60_days_of_the_end_warns_with_the_days_left() -> None:
    [(status, detail)] = _judge(_info("STANDARD_SUPPORT", TODAY + dt.timedelta(days=60)))
    assert status == "WARN" and "ends 2026-07-31 (60 days left)" in detail


def test_extended_support_warns() -> None:
    [(status, detail)] = _judge(_info("EXTENDED_SUPPORT", TODAY - dt.timedelta(days=10)))
    assert status == "WARN" and "EXTENDED_SUPPORT until 2027-05-22" in detail


def test_no_version_information_no_check() -> None:
    assert _judge(None) == []
