"""A key the exchange refuses stops the account's feed for good and says so, rather than retrying blind."""

from __future__ import annotations

import dataclasses

import pytest

from daemon.core.events import Freshness
from daemon.exchanges.connector import Connector
from daemon.exchanges.errors import AuthenticationFailed
from daemon.exchanges.marketdata import hub_for
from tests.integration.connector_support import EXCHANGES, FAST_FEED, FAST_HUB, account_for, simulator, until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("exchange", EXCHANGES)
async def test_a_refused_secret_stops_the_feed_with_a_refusal_the_policy_can_tell(exchange: str) -> None:
    async with simulator(exchange) as sim:
        good = account_for(sim)
        wrong = dataclasses.replace(good, secret="not-the-secret")
        async with hub_for(good, FAST_HUB) as hub, Connector(wrong, hub, FAST_FEED) as connector:

            def refused(c: Connector) -> bool:
                return any(h.refused and h.freshness is Freshness.DOWN for h in c.state.health.values())

            await until(connector, refused)
            assert isinstance(connector.feed.stopped_because, AuthenticationFailed)
            assert connector.state.last_snapshot_ms is None  # nothing was taken for a picture
        assert all(entry["remote"] == "127.0.0.1" for entry in sim.engine.request_log)
