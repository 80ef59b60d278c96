"""The status page in a real browser: Debian's headless Chromium, driven by Playwright, against `marginguard run`
watching three accounts on two simulated exchanges (Binance and OKX; isolated and cross legs, long and short).

What a trader looking at the page would notice: every position the exchanges hold is there, closest to
liquidation first, with the daemon's own figures; a mark move shows on its distance bar within 2 s; an operator's
free text (a silence's reason full of markup) reads as text and runs nothing; nothing is refused by the page's
Content-Security-Policy and nothing is fetched from anywhere but the daemon. The run leaves a full-page
screenshot at build/screenshots/status_page.png.

The browser is /usr/bin/chromium (`make test` installs Debian's `chromium` where it can); Playwright never
downloads one. Without it the test skips, saying what to install, except under CI, where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from daemon.app.demo_command import sim_account
from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    REPO_ROOT,
    DaemonProcess,
    account_for,
    config_document,
    eventually_async,
    free_port,
    webhook_sink,
    write_config,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO_ROOT / "build" / "screenshots" / "status_page.png"
# As root on a machine whose only network is loopback: no sandbox (it needs an unprivileged user), no GPU, and
# none of Chromium's own calls home, which this machine refuses (many at a time) and which would slow its start.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
UPDATE_WITHIN_MS = 2000  # the promise: a mark move shows on the page within 2 s
PAGE_FILES = {"/", "/static/status.css", "/static/status.js", "/static/favicon.svg", "/status"}

# An operator's free text, shown on the page: each piece would do something if it were taken as markup.
HOSTILE_REASON = (
    '<script>window.injected = "script"</script>'
    '<img src="/injected.png" onerror="window.injected = \'img\'"><b>bold</b> & "quotes"'
)

# The legs put on the simulators: (account, neutral symbol, side, contracts, margin mode, leverage).
BINANCE_LEGS = [
    ("binance-main", "BTCUSDT", "long", 0.05, "isolated", 20),  # ~4.6 % from liquidation: the one that moves
    ("binance-main", "ETHUSDT", "short", 1.0, "cross", 10),
    ("binance-alt", "SOLUSDT", "long", 20.0, "isolated", 10),
]
OKX_LEGS = [
    ("okx-main", "BTCUSDT", "short", 5.0, "isolated", 20),  # OKX counts BTC in contracts of 0.01
    ("okx-main", "SOLUSDT", "long", 10.0, "cross", 5),  # on a 1000 USDT wallet: liquidated near 67
]
Leg = tuple[str, str, str]  # account id, unified symbol, side
MOVED: Leg = ("binance-main", "BTC/USDT:USDT", "long")


def _missing() -> str | None:
    """What a browser test needs and this machine lacks, said as what to install (None: nothing)."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (make setup installs the dev extras)"
    if not CHROMIUM.exists():
        return (
            f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium; make test does it as root)"
        )
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the status page's browser test cannot run under CI: {missing}")
        pytest.skip(missing)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


# ---- the simulated positions ----


async def _open(http: aiohttp.ClientSession, sim: SimServer, leg: tuple[Any, ...], api_key: str) -> None:
    _account, symbol, side, contracts, mode, leverage = leg
    body = {
        "api_key": api_key,
        "symbol": symbol,
        "side": side,
        "contracts": contracts,
        "action": "open",
        "margin_mode": mode,
        "leverage": leverage,
    }
    async with http.post(f"{sim.http_base}/_sim/position", json=body) as response:
        assert response.status == 200, await response.text()


async def _held(http: aiohttp.ClientSession, sim: SimServer, accounts: dict[str, str]) -> set[Leg]:
    """Every leg the simulator holds, as (account id, unified symbol, side), read from its control API."""
    async with http.get(f"{sim.http_base}/_sim/state") as response:
        state = await response.json()
    held: set[Leg] = set()
    for account_id, api_key in accounts.items():
        for position in state["accounts"][api_key]["positions"]:
            market = sim.engine.markets[position["symbol"]]
            unified = f"{market.base}/{market.quote}:{market.settle}"
            held.add((account_id, unified, position["side"]))
    return held


# ---- what the page shows ----

# Each row of the positions table as the reader sees it: its cells' text, keyed by column heading, with the
# distance bar's width and colour.
READ_ROWS = """
() => {
  const headings = [...document.querySelectorAll("#legs thead th")].map((th) => th.textContent);
  return [...document.querySelectorAll("#legs tbody tr")].map((tr) => {
    const cells = Object.fromEntries([...tr.cells].map((td, i) => [headings[i], td.textContent]));
    const fill = tr.querySelector(".bar > span");
    return { cells, bar_width: fill.style.width, bar_class: fill.className };
  });
}
"""

# True once one leg's distance bar is drawn at another width than `before`.
BAR_MOVED = """
([account, symbol, side, before]) => {
  const row = [...document.querySelectorAll("#legs tbody tr")].find(
    (tr) => tr.dataset.account === account && tr.dataset.symbol === symbol && tr.dataset.side === side);
  return row !== undefined && row.querySelector(".bar > span").style.width !== before;
}
"""


def _key(row: dict[str, Any]) -> Leg:
    cells = row["cells"]
    return cells["account"], cells["symbol"], cells["side"]


def _number(shown: str, value: float | None, digits: int, what: str) -> None:
    """`shown` is `value` to the `digits` significant digits the page prints ("unknown" when it is None)."""
    if value is None:
        assert shown == "unknown", (what, shown)
        return
    assert math.isclose(float(shown), value, rel_tol=10 ** (1 - digits), abs_tol=1e-12), (what, shown, value)


def _percent(shown: str, value: float | None, what: str) -> None:
    """`shown` is `value` as a percentage with two decimals ("unknown" when it is None)."""
    if value is None:
        assert shown == "unknown", (what, shown)
        return
    assert shown.endswith(" %"), (what, shown)
    assert math.isclose(float(shown[:-2]), value * 100, abs_tol=0.0051), (what, shown, value)


def _check_row(row: dict[str, Any], leg: dict[str, Any]) -> None:
    """One positions-table row against the daemon's /status figures for its leg."""
    cells, what = row["cells"], _key(row)
    _percent(cells["distance"], leg["distance_to_liquidation"], f"{what} distance")
    model, exchange = cells["liq. price (model / exchange)"].split(" / ")
    _number(model, leg["liquidation_price"], 8, f"{what} model liquidation price")
    _number(exchange, leg["exchange_liquidation_price"], 8, f"{what} exchange liquidation price")
    _number(cells["mark"], leg["mark_price"], 8, f"{what} mark")
    _percent(cells["margin ratio"], leg["margin_ratio"], f"{what} margin ratio")
    _number(cells["size"], leg["quantity"], 8, f"{what} size")
    _number(cells["notional"], leg["notional"], 6, f"{what} notional")
    _number(cells["lev."].removesuffix("x"), leg["leverage"], 4, f"{what} leverage")
    assert cells["mode"] == leg["margin_mode"], (what, cells["mode"])


async def _status(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with http.get(f"http://127.0.0.1:{port}/status") as response:
        document: dict[str, Any] = await response.json()
    return document


def _legs(status: dict[str, Any]) -> dict[Leg, dict[str, Any]]:
    return {
        (account, leg["symbol"], leg["side"]): leg
        for account, info in status["accounts"].items()
        for leg in info["legs"]
    }


async def _silence(config: Path, account: str, reason: str) -> None:
    """`marginguard silence` as an operator types it, while the daemon runs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "silence",
        "--config",
        str(config),
        "--account",
        account,
        "--for",
        "2h",
        "--reason",
        reason,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, (out + err).decode()


async def _watch(page: Page) -> tuple[list[str], list[str]]:
    """Console errors and uncaught exceptions (Chromium reports a CSP refusal as a console error too), and every
    URL the page asks for."""
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    # Refusals as the page itself hears them, before any of its scripts runs.
    await page.add_init_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    return errors, requests


async def test_the_status_page_shows_every_simulated_position_with_the_daemons_figures_and_follows_a_mark(
    tmp_path: Path, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        binance = await stack.enter_async_context(SimServer("binance"))
        okx = await stack.enter_async_context(SimServer("okx"))
        receiver = await stack.enter_async_context(Receiver())
        http = await stack.enter_async_context(aiohttp.ClientSession())

        # A second Binance account, added through the control API as its README row says.
        alt = {"api_key": "alt-key", "secret": "alt-secret", "wallet": {"USDT": 2000}}
        async with http.post(f"{binance.http_base}/_sim/account", json=alt) as response:
            assert response.status == 200, await response.text()
            alt_config = (await response.json())["ccxt_config"]
        keys = {
            "binance-main": binance.account.api_key,
            "binance-alt": "alt-key",
            "okx-main": okx.account.api_key,
        }
        for spec in BINANCE_LEGS:
            await _open(http, binance, spec, keys[spec[0]])
        # A cross wallet small enough that the cross long has a liquidation price.
        async with http.post(f"{okx.http_base}/_sim/balance", json={"amount": 1000}) as response:
            assert response.status == 200, await response.text()
        for spec in OKX_LEGS:
            await _open(http, okx, spec, keys[spec[0]])

        port = free_port()
        accounts = [
            account_for("binance-main", binance),
            sim_account("binance-alt", binance.ccxt_id, alt_config),
            account_for("okx-main", okx),
        ]
        config = write_config(
            tmp_path / "marginguard.toml",
            config_document(tmp_path, port, accounts, [webhook_sink(receiver.url)], topup=False),
        )
        daemon = await stack.enter_async_context(DaemonProcess(config, port))
        await daemon.wait_ready()
        await _silence(config, "okx-main", HOSTILE_REASON)

        page = await browser.new_page(viewport=VIEWPORT)
        errors, requests = await _watch(page)
        await page.goto(f"http://127.0.0.1:{port}/")
        # Polled with `evaluate`, not `wait_for_function`: Playwright 1.65 compiles a waited predicate with eval,
        # which the page's Content-Security-Policy (rightly) forbids.
        await eventually_async(
            lambda: page.evaluate("() => document.querySelectorAll('#legs tbody tr').length > 0"),
            5,
            "the rows",
        )

        # Every leg the exchanges hold is on the page, once, with the daemon's figures, closest first.
        held = await _held(http, binance, {k: keys[k] for k in ("binance-main", "binance-alt")})
        held |= await _held(http, okx, {"okx-main": keys["okx-main"]})
        assert len(held) == len(BINANCE_LEGS) + len(OKX_LEGS)
        rows = await page.evaluate(READ_ROWS)
        status = await _status(http, port)
        legs = _legs(status)
        assert sorted(_key(r) for r in rows) == sorted(held) == sorted(legs)
        for row in rows:
            _check_row(row, legs[_key(row)])
        # (an unknown distance counts as the closest: it cannot be judged)
        distances = [legs[_key(r)]["distance_to_liquidation"] for r in rows]
        ranks = [-math.inf if d is None else d for d in distances]
        assert ranks == sorted(ranks), f"not closest to liquidation first: {distances}"
        assert {legs[k]["margin_mode"] for k in held} == {"isolated", "cross"}

        # A mark move through the simulator's control API: into the warning band, 2.8 % from liquidation.
        [moved_row] = [r for r in rows if _key(r) == MOVED]
        liquidation = legs[MOVED]["liquidation_price"]
        new_mark = round(liquidation / (1 - 0.028), 1)
        moved_at = time.monotonic()
        mark = {"symbol": "BTCUSDT", "price": new_mark}
        async with http.post(f"{binance.http_base}/_sim/mark", json=mark) as response:
            assert response.status == 200, await response.text()
        await eventually_async(
            lambda: page.evaluate(BAR_MOVED, [*MOVED, moved_row["bar_width"]]),
            UPDATE_WITHIN_MS / 1000,
            "the moved leg's bar to change",
        )
        took_s = time.monotonic() - moved_at
        # The bar that changed shows the daemon's new figures: shorter, in the warning colour.
        status = await _status(http, port)
        [row] = [r for r in await page.evaluate(READ_ROWS) if _key(r) == MOVED]
        moved_leg = _legs(status)[MOVED]
        assert moved_leg["mark_price"] == new_mark, moved_leg
        _check_row(row, moved_leg)
        assert float(row["bar_width"].rstrip("%")) < float(moved_row["bar_width"].rstrip("%")), (
            moved_row["bar_width"],
            row["bar_width"],
        )
        assert (moved_row["bar_class"], row["bar_class"]) == ("ok", "warning")
        print(f"the distance bar changed {took_s:.2f} s after the mark move")

        # The warning it raises reaches the latest alerts, as text.
        async def warned() -> bool:
            shown: bool = await page.evaluate(
                "() => [...document.querySelectorAll('#alerts tbody tr')]"
                ".some((tr) => tr.textContent.includes('binance-main BTC/USDT:USDT long warning'))"
            )
            return shown

        await eventually_async(warned, 15, "the warning on the page", daemon)

        # The operator's markup reads as text on the page and ran nothing.
        silences = await page.evaluate(
            "() => [...document.querySelectorAll('#accounts tbody tr')]"
            ".map((tr) => [tr.cells[0].textContent, tr.cells[3].textContent])"
        )
        shown_reasons = [text for account, text in silences if account == "okx-main"]
        assert len(shown_reasons) == 1 and HOSTILE_REASON in shown_reasons[0], silences
        assert await page.evaluate("() => window.injected === undefined")
        assert await page.evaluate("() => document.querySelectorAll('img, b, main script').length") == 0

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # Nothing went wrong in the page, nothing was refused, nothing came from anywhere but the daemon.
        assert errors == [], errors
        assert await page.evaluate("() => window.cspViolations") == []
        origin = f"127.0.0.1:{port}"
        elsewhere = [
            u for u in requests if urlsplit(u).netloc != origin or urlsplit(u).path not in PAGE_FILES
        ]
        assert elsewhere == [], elsewhere
        # ...and that watch is not blind: a request the policy forbids is heard as a refusal.
        await page.evaluate("() => fetch('http://127.0.0.2:9/').catch(() => null)")
        await eventually_async(
            lambda: page.evaluate("() => window.cspViolations.length > 0"), 5, "the probe's refusal"
        )
        await page.close()
