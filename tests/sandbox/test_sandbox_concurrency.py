"""moto's backends are not thread-safe; eksprivate calls AWS from several threads at once.

Seen in CI: `down` deleted a role while another thread detached a policy from a second one, moto's
`get_role` iterated the roles dict as it shrank, and the call came back a 500 HTML page, which AWS never
sends.  The sandbox serves one moto request at a time (`server.MOTO_STATE`); this test widens moto's
race window and shows that a write waits for a read in progress instead of breaking it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import ClientFactory

TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})


def test_a_write_waits_for_a_read_that_iterates_what_it_changes(
    client: ClientFactory, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.iam.models import IAMBackend

    iam = client("iam")
    for n in range(3):
        iam.create_role(RoleName=f"{name}-{n}", AssumeRolePolicyDocument=TRUST)

    reading = threading.Event()
    written = threading.Event()

    def get_roles_slowly(self: Any) -> Iterator[Any]:
        # moto's own get_roles iterates self.roles.values(); the first iteration pauses at its first role
        # until the writer is done (or half a second passes), as a thread switch at the wrong instant would.
        pause = not reading.is_set()
        for role in self.roles.values():
            if pause:
                reading.set()
                written.wait(0.5)
                pause = False
            yield role

    monkeypatch.setattr(IAMBackend, "get_roles", get_roles_slowly)

    read: dict[str, Any] = {}

    def reader() -> None:
        try:
            read["role"] = client("iam").get_role(RoleName=f"{name}-2")["Role"]["RoleName"]
        except Exception as error:  # the assertion below shows what it was
            read["error"] = repr(error)

    thread = threading.Thread(target=reader)
    thread.start()
    assert reading.wait(10), "the read never reached moto"
    iam.create_role(RoleName=f"{name}-new", AssumeRolePolicyDocument=TRUST)
    written.set()
    thread.join(10)

    assert read == {"role": f"{name}-2"}
