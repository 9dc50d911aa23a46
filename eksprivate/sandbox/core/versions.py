"""The Kubernetes versions EKS offers, and the date their support status is computed for.

Shared by eks_versions (DescribeClusterVersions; CreateCluster's version) and eks_upgrades (UpdateClusterVersion;
AMI releases; eks_addons: add-on versions per minor). The versions are data (`CALENDAR`), their status is
computed from the sandbox's date (`today()`: the real UTC date unless a test sets one): standard support for
14 months from the EKS release, extended support for 12 more, then unsupported (EKS user guide,
kubernetes-versions). Past the table's newest version a minor is projected every RELEASE_MONTHS (Kubernetes
ships three a year; EKS follows), so the sandbox stays right as dates pass: there is always a version in
standard support, and the default is one (EKS never defaults to a version in extended support).
`set_calendar` replaces the table and/or the date, e.g. for a test of an upgrade that crosses an
end-of-support date; `reset` restores both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone

STANDARD, EXTENDED, UNSUPPORTED = "STANDARD_SUPPORT", "EXTENDED_SUPPORT", "UNSUPPORTED"
UNSUPPORTED_VERSION_MSG = "unsupported Kubernetes version {version}"  # EKS's wording not confirmed


@dataclass(frozen=True)
class ClusterVersion:
    """One Kubernetes minor version as EKS offers it."""

    version: str
    released: date  # Amazon EKS release
    end_of_standard: date
    end_of_extended: date
    platform_version: str = "eks.1"  # illustrative: EKS raises it with each platform release
    patch_version: str = ""  # illustrative
    default: bool = False  # what CreateCluster gives a request without `version`

    def status(self, today: date) -> str | None:
        """None before the EKS release: not offered at all yet."""
        if today < self.released:
            return None
        if today < self.end_of_standard:
            return STANDARD
        return EXTENDED if today < self.end_of_extended else UNSUPPORTED


# Dates: the "Amazon EKS Kubernetes release calendar" of the EKS user guide (kubernetes-versions.adoc) for
# 1.29-1.34; 1.35 and 1.28 from endoflife.date/amazon-eks (the same 14 + 12 months rule).
CALENDAR: tuple[ClusterVersion, ...] = (
    ClusterVersion("1.28", date(2023, 9, 26), date(2024, 11, 26), date(2025, 11, 26), "eks.50", "1.28.15"),
    ClusterVersion("1.29", date(2024, 1, 23), date(2025, 3, 23), date(2026, 3, 23), "eks.61", "1.29.15"),
    ClusterVersion("1.30", date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23), "eks.58", "1.30.14"),
    ClusterVersion("1.31", date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26), "eks.50", "1.31.14"),
    ClusterVersion("1.32", date(2025, 1, 23), date(2026, 3, 23), date(2027, 3, 23), "eks.34", "1.32.11"),
    ClusterVersion("1.33", date(2025, 5, 29), date(2026, 7, 29), date(2027, 7, 29), "eks.27", "1.33.7"),
    ClusterVersion("1.34", date(2025, 10, 2), date(2026, 12, 2), date(2027, 12, 2), "eks.13", "1.34.3", default=True),
    ClusterVersion("1.35", date(2026, 1, 27), date(2027, 3, 27), date(2028, 3, 27), "eks.3", "1.35.0"),
)

RELEASE_MONTHS = 4  # one Kubernetes minor about every four months (three a year)
STANDARD_MONTHS, EXTENDED_MONTHS = 14, 12
# The table holds every minor EKS releases before this date (the next one was not announced when it was
# written): projections start here, so the table's own dates stay as they are until then.
TABLE_COMPLETE_UNTIL = date(2027, 1, 1)

_calendar: tuple[ClusterVersion, ...] = CALENDAR
_today: date | None = None  # None: the real UTC date
_lock = threading.Lock()


def set_calendar(versions: tuple[ClusterVersion, ...] | None = None, today: date | None = None) -> None:
    """Replace the versions (None: keep them) and/or the date the statuses are computed for."""
    global _calendar, _today
    with _lock:
        if versions is not None:
            _calendar = versions
        _today = today


def reset() -> None:
    set_calendar(CALENDAR, None)


def _utc_today() -> date:
    return datetime.now(timezone.utc).date()


def today() -> date:
    """The date statuses are computed for: the one `set_calendar` set, else the real UTC date."""
    return _today if _today is not None else _utc_today()


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, 28))


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def versions() -> list[ClusterVersion]:
    """The table, oldest first, with minors projected past its newest up to the sandbox's date."""
    table = sorted(_calendar, key=lambda v: _minor(v.version))
    if not table:
        return []
    now, last = today(), table[-1]
    while True:
        released = max(_add_months(last.released, RELEASE_MONTHS), TABLE_COMPLETE_UNTIL)
        if released > now:
            return table
        major, minor = _minor(last.version)
        last = ClusterVersion(f"{major}.{minor + 1}", released, _add_months(released, STANDARD_MONTHS),
                              _add_months(released, STANDARD_MONTHS + EXTENDED_MONTHS), "eks.1",
                              f"{major}.{minor + 1}.0")
        table.append(last)


def find(version: str) -> ClusterVersion | None:
    return next((v for v in versions() if v.version == version), None)


def offered(include_all: bool = False) -> list[tuple[ClusterVersion, str]]:
    """Released versions with their status today, oldest first; unsupported ones only with `include_all`."""
    now = today()
    out = []
    for item in versions():
        status = item.status(now)
        if status is not None and (include_all or status != UNSUPPORTED):
            out.append((item, status))
    return out


def default_version() -> str | None:
    """The flagged default while it is in standard support, else the newest version in standard support."""
    standard = [v for v, status in offered() if status == STANDARD]
    flagged = [v.version for v in standard if v.default]
    return next(iter(flagged), None) or (standard[-1].version if standard else None)


def creatable(version: str) -> bool:
    return any(v.version == version for v, _ in offered())
