"""The daemon's HTTP face: /healthz, /readyz and /metrics (Prometheus), on 127.0.0.1 by default.

/status gives each account's legs with the model's figures (what `marginguard status` prints); / is the status
page that shows it, live; /incident/<number>.png is the incident chart of a critical or liquidated message.
/healthz answers 200 while the process serves requests and can keep its promises, and 503 with the reason when it
cannot (its journal cannot be written: alerts are not durable and no top-up starts). /readyz answers 200 only when every account has had its
first snapshot and all of its streams are fresh, and 503 with the reasons otherwise — so an orchestrator (or a
person) can tell "running" from "seeing". Metrics come from prometheus_client, the reference client, rather
than hand-written exposition text.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

T = TypeVar("T")


@dataclass
class Metrics:
    """The daemon's metrics, in a registry of their own (so tests and several daemons never collide)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.stream_age = Gauge(
            "marginguard_stream_age_seconds",
            "Seconds since a stream's last message",
            ["account", "stream"],
            registry=r,
        )
        self.stream_stale = Gauge(
            "marginguard_stream_stale", "1 while a stream is stale or down", ["account", "stream"], registry=r
        )
        self.positions = Gauge("marginguard_positions", "Open position legs", ["account"], registry=r)
        self.min_distance = Gauge(
            "marginguard_min_distance_to_liquidation",
            "Smallest distance to liquidation (fraction of mark) among the account's legs; absent when unknown",
            ["account"],
            registry=r,
        )
        self.unknown_legs = Gauge(
            "marginguard_legs_unknown", "Legs whose liquidation figures are unknown", ["account"], registry=r
        )
        self.alerts = Counter(
            "marginguard_alerts", "Alerts journaled", ["account", "kind", "severity", "state"], registry=r
        )
        self.topups = Counter("marginguard_topups", "Top-up outcomes", ["account", "outcome"], registry=r)
        self.outbox_pending = Gauge(
            "marginguard_outbox_pending", "Deliveries waiting in the outbox", registry=r
        )
        # Per leg: bounded by the legs held (a closed leg's series are removed), never by symbols seen.
        leg = ["account", "symbol", "side"]
        self.leg_distance = Gauge(
            "marginguard_leg_distance_to_liquidation",
            "A leg's distance to liquidation (fraction of mark); absent while unknown",
            leg,
            registry=r,
        )
        self.leg_margin_ratio = Gauge(
            "marginguard_leg_margin_ratio",
            "A leg's margin ratio (1.0: liquidation); absent while unknown",
            leg,
            registry=r,
        )
        self.leg_liquidation_price = Gauge(
            "marginguard_leg_liquidation_price",
            "A leg's liquidation price (the model's); absent while unknown",
            leg,
            registry=r,
        )
        self.stream_outages = Counter(
            "marginguard_stream_outages",
            "Times a stream went down or stale (each one is reconnected)",
            ["account", "stream"],
            registry=r,
        )
        self.deliveries = Counter(
            "marginguard_deliveries",
            "Delivery attempts by outcome (sent, refused, rate_limited, failed)",
            ["sink", "outcome"],
            registry=r,
        )
        self.journal_writable = Gauge(
            "marginguard_journal_writable",
            "1 while the journal can be written; 0 while alerts are held in memory and top-ups are paused",
            registry=r,
        )
        # A cluster instance's leases (absent from a single daemon's metrics: they stay at 0 there).
        self.shards_held = Gauge(
            "marginguard_cluster_shards_held", "Account shards whose lease this instance holds", registry=r
        )
        self.handovers = Counter(
            "marginguard_cluster_handovers",
            "Shards taken (gained), given up (released) or lost (lease ran out or was refused)",
            ["change"],
            registry=r,
        )
        self.fencing_refusals = Counter(
            "marginguard_cluster_fencing_refusals",
            "Writes the database refused because this instance no longer held the account's shard",
            registry=r,
        )


Readiness = Callable[[], tuple[bool, dict[str, str]]]
# `status`, `before_scrape` and `chart` read the journal: they may be coroutines (the journal port's reads are).
Status = Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]]
Health = Callable[[], list[str]]  # what keeps the daemon from keeping its promises (empty: healthy)
Chart = Callable[
    [int], bytes | Awaitable[bytes | None] | None
]  # a message's incident chart (PNG) by its number; None: none kept


def build_app(
    metrics: Metrics,
    readiness: Readiness,
    status: Status | None = None,
    before_scrape: Callable[[], Awaitable[None] | None] | None = None,
    health: Health | None = None,
    chart: Chart | None = None,
) -> web.Application:
    """The app; `status` serves /status (the accounts' legs, for `marginguard status`), `before_scrape`
    refreshes gauges that are cheaper to read on demand than to keep current, `health` says what is broken,
    `chart` gives a message's incident chart (PNG) by its number, served at /incident/<number>.png."""

    async def healthz(_request: web.Request) -> web.Response:
        problems = health() if health is not None else []
        if problems:
            return web.json_response({"status": "failing", "reasons": problems}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        ready, reasons = readiness()
        body = {"status": "ready" if ready else "not ready", "accounts": reasons}
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps(body, sort_keys=True),
            content_type="application/json",
        )

    async def status_endpoint(_request: web.Request) -> web.Response:
        assert status is not None
        return web.Response(
            text=json.dumps(await _resolved(status()), sort_keys=True), content_type="application/json"
        )

    async def metrics_endpoint(_request: web.Request) -> web.Response:
        if before_scrape is not None:
            await _resolved(before_scrape())
        response = web.Response(body=generate_latest(metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def incident(request: web.Request) -> web.Response:
        assert chart is not None
        png = await _resolved(chart(int(request.match_info["number"])))
        if png is None:
            raise web.HTTPNotFound(text="no such chart (charts are kept a week)")
        return web.Response(body=png, content_type="image/png", headers=CHART_HEADERS)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    if status is not None:
        app.router.add_get("/status", status_endpoint)
        app.router.add_get("/", _asset_handler("status.html"))
        for name in PAGE_ASSETS:
            app.router.add_get(f"/static/{name}", _asset_handler(name))
    if chart is not None:
        app.router.add_get(r"/incident/{number:\d{1,18}}.png", incident)
    return app


# The status page: one HTML file, its stylesheet and script, served from the package (no build step, nothing
# fetched from elsewhere: it works offline). The page only reads /status.
# The icon too: a browser asks for one with every page, and a 404 for it is an error in the page's console.
PAGE_ASSETS = ("status.css", "status.js", "favicon.svg")
_CONTENT_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
# Everything from this server and nothing else; no inline script or markup style; never inside another page.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


# A chart never changes once drawn; it is an image, never a document to interpret.
CHART_HEADERS = {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=86400, immutable",
}


def _asset_handler(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    body = resources.files("daemon.app").joinpath("static", name).read_bytes()
    content_type = _CONTENT_TYPES[Path(name).suffix]

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)

    return serve


async def _resolved(value: T | Awaitable[T]) -> T:
    return await value if inspect.isawaitable(value) else value


def parse_bind(bind: str) -> tuple[str, int]:
    """'127.0.0.1:9108' -> ('127.0.0.1', 9108); '[::1]:9108' -> ('::1', 9108)."""
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def start_http(app: web.Application, bind: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_bind(bind)
    await web.TCPSite(runner, host, port).start()
    return runner
