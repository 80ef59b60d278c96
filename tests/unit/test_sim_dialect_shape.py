"""Every registered simulator dialect has the one shape of `daemon.sim.dialect`: a `SimDialect` subclass in
`<package>/dialect.py` with `rest` and `streams` parts in `rest.py` and `streams.py`, built by one constructor, an
oracle family, and the exchange's own answer to every HTTP fault. A new dialect that copies the template and adds
its registry line is held to the same."""

from __future__ import annotations

import importlib
import json

import ccxt.pro
import pytest

from daemon.sim.dialect import SimDialect
from daemon.sim.dialects import DIALECTS
from daemon.sim.oracle.registry import rules_for
from daemon.sim.server import SimServer

MODULES = ("dialect", "rest", "streams", "auth", "payloads")


@pytest.mark.parametrize("name", list(DIALECTS))
def test_each_dialect_has_the_template_s_layout_and_parts(name: str) -> None:
    dialect_class = DIALECTS[name]
    assert issubclass(dialect_class, SimDialect)
    package = dialect_class.__module__.rsplit(".", 1)[0]
    assert dialect_class.__module__ == f"{package}.dialect"
    for module in MODULES:
        importlib.import_module(f"{package}.{module}")
    assert rules_for(dialect_class.family) is not None  # the oracle knows its margin rules

    sim = SimServer(name, mark_interval_s=None)
    dialect = sim.dialect
    assert type(dialect) is dialect_class
    assert type(dialect.rest).__module__ == f"{package}.rest"
    assert type(dialect.streams).__module__ == f"{package}.streams"
    paths = {route.path for route in dialect.routes()}
    assert len(paths) >= 5


@pytest.mark.parametrize("name", list(DIALECTS))
def test_each_dialect_points_an_unmodified_ccxt_client_only_at_the_simulator(name: str) -> None:
    sim = SimServer(name, mark_interval_s=None)
    config = sim.ccxt_config()
    client = getattr(ccxt.pro, sim.ccxt_id)(config)
    urls = json.dumps(client.urls.get("api"))
    assert "http" in urls and all(host in ("127.0.0.1", "") for host in _hosts(client.urls.get("api"))), urls
    assert config["apiKey"] == sim.account.api_key


@pytest.mark.parametrize("name", list(DIALECTS))
@pytest.mark.parametrize(
    ("kind", "status"), [("rate_limited", 429), ("server_error", 500), ("server_error", 503)]
)
def test_each_dialect_answers_http_faults_in_its_own_shape(name: str, kind: str, status: int) -> None:
    response = SimServer(name, mark_interval_s=None).dialect.error_response(kind, status)
    assert response.status in (status, 403) and response.body


def _hosts(value: object) -> list[str]:
    """The hosts of every URL in ccxt's nested `urls["api"]`."""
    if isinstance(value, str):
        if "://" not in value:
            return []
        return [value.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]]
    if isinstance(value, dict):
        return [host for item in value.values() for host in _hosts(item)]
    return []
