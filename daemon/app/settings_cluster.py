"""The `[cluster]` section: several marginguard instances sharing the accounts of one PostgreSQL journal.

Each account belongs to one of `shards` shards; each instance holds a fair share of the shards under leases that
the database's clock judges, renews them every `renew_interval_s`, and runs exactly the accounts of the shards
it holds (`daemon.app.cluster`). A lease not renewed within `lease_ttl_s` is taken over by another instance.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Annotated

from pydantic import Field, model_validator

from daemon.app.settings_base import FieldProblem, Section

# The time a request to an exchange may take, on top of its signed validity window, that a lease must still
# have left before the request is sent (see `daemon.app.cluster.LeaseClock.may_send`).
ROUND_TRIP_BUDGET_S = 2.0


class ClusterSettings(Section):
    enabled: bool = False
    # Fixed for the life of the journal: every instance must use the same number (it is recorded there).
    shards: Annotated[int, Field(ge=1, le=4096)] = 64
    # How long a lease lasts without renewal: an instance that dies is replaced after at most this (plus a
    # renewal interval). Shorter means a faster takeover and less time for actions in each lease.
    lease_ttl_s: Annotated[float, Field(ge=3, le=600, allow_inf_nan=False)] = 10.0
    renew_interval_s: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = 2.5
    # How this instance is named in `marginguard cluster`, /status and the leases; empty: <hostname>-<pid>.
    instance_name: str = ""

    @model_validator(mode="after")
    def _renewed_in_time(self) -> ClusterSettings:
        if self.renew_interval_s * 2 > self.lease_ttl_s:
            raise FieldProblem(
                "renew_interval_s",
                f"must be at most half of lease_ttl_s ({self.lease_ttl_s:g} s): a lease renewed less often is "
                "lost to a single slow round trip",
            )
        return self

    def name(self) -> str:
        return self.instance_name or f"{socket.gethostname()}-{os.getpid()}"

    def lease_owner(self) -> str:
        """Who holds leases: the name plus a token drawn at each start. Two processes given the same name by
        mistake (or a restart under the same pod name) are still two owners, and never renew each other's
        leases or pass each other's fences."""
        return f"{self.name()}~{secrets.token_hex(3)}"

    def action_room_s(self) -> float:
        """The least time a held lease has left (just before its renewal) beyond a request's round trip: a venue
        whose signed window is longer than this could land an action after the lease passed to another
        instance."""
        return self.lease_ttl_s - self.renew_interval_s - ROUND_TRIP_BUDGET_S
