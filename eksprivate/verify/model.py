"""The audit's result types: one `Check` per thing looked at, gathered in a `Report`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["PASS", "WARN", "FAIL"]
STATUSES: tuple[Status, ...] = ("PASS", "WARN", "FAIL")


@dataclass
class Check:
    """One finding. `id` is stable (scripts match on it); `resource` names what was looked at."""

    id: str
    title: str
    status: Status
    resource: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


@dataclass
class Report:
    cluster: str
    region: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == "FAIL" for c in self.checks)

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status == status)

    def by_id(self, check_id: str) -> list[Check]:
        return [c for c in self.checks if c.id == check_id]

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape for scripts (`eksprivate verify --output json`)."""
        return {
            "cluster": self.cluster,
            "region": self.region,
            "summary": {s.lower(): self.count(s) for s in STATUSES},
            "checks": [c.to_dict() for c in self.checks],
        }
