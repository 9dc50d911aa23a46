"""Errors the sandbox answers with, through moto's public error type.

moto serialises a `moto.core.exceptions.ServiceException` by its `code` attribute, looked up among the
service model's error shapes (botocore's service-2.json), so the client sees the code and the HTTP status
AWS documents for it, with any extra members the shape declares (EKS's `validZones`, `clusterName`).
Subclassing a service's own exception classes and setting private attributes (moto 5.2.5's EKS `TYPE`)
broke on a patch release: moto 5.2.6 ignores `TYPE`, and the error became `UnspecifiedErrorCode`.
"""

from __future__ import annotations

from typing import Any


def service_error(code: str, message: str, **members: Any) -> Exception:
    """An error with AWS's code `code` (a shape in the service model), its message and modelled members."""
    from moto.core.exceptions import ServiceException

    error = ServiceException(code, message)
    for name, value in members.items():
        setattr(error, name, value)
    return error
