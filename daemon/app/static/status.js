// marginguard's status page: reads /status every second and redraws. Read-only; every value is put in the page
// as text (textContent), never as markup, so nothing an exchange or a configuration says can run here.
"use strict";

// A mark move shows within 2 s (the page's promise): one period plus the daemon's own delay must fit in it.
const PERIOD_MS = 1000;

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fmt(value, digits = 8) {
  if (value === null || value === undefined) return "unknown";
  return Number(value).toPrecision(digits).replace(/\.?0+$/, "").replace(/\.?0+e/, "e");
}

function pct(value) {
  return value === null || value === undefined ? "unknown" : (value * 100).toFixed(2) + " %";
}

function level(distance, thresholds) {
  if (distance === null || distance === undefined) return "unknown";
  if (thresholds.critical_distance !== null && distance <= thresholds.critical_distance) return "critical";
  if (thresholds.warning_distance !== null && distance <= thresholds.warning_distance) return "warning";
  return "ok";
}

function bar(td, distance, thresholds) {
  const outer = document.createElement("span");
  outer.className = "bar";
  const inner = document.createElement("span");
  const scale = Math.max(thresholds.warning_distance || 0.1, 0.01) * 3;  // a full bar: three times the warning
  const width = distance === null || distance === undefined ? 100 : Math.max(0, Math.min(1, distance / scale)) * 100;
  inner.style.width = width + "%";
  inner.className = level(distance, thresholds);
  outer.appendChild(inner);
  td.appendChild(outer);
  td.appendChild(document.createTextNode(pct(distance)));
}

function sparkline(td, history) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const known = history.filter((p) => p[1] !== null);
  if (known.length > 1) {
    const t0 = known[0][0], t1 = known[known.length - 1][0];
    const values = known.map((p) => p[1]);
    const lo = Math.min(...values), hi = Math.max(...values);
    const points = known.map((p) => {
      const x = t1 > t0 ? ((p[0] - t0) / (t1 - t0)) * 118 + 1 : 60;
      const y = hi > lo ? 23 - ((p[1] - lo) / (hi - lo)) * 22 : 12;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.join(" "));
    svg.appendChild(line);
  }
  td.appendChild(svg);
}

// A critical or liquidated alert's incident chart (mark vs liquidation price, its last minutes), served by the
// daemon at /incident/<number>.png: a thumbnail that opens the full picture. Only an address of this server is
// ever used (the page's img-src is 'self').
function chart(td, path) {
  if (typeof path !== "string" || !/^\/incident\/\d+\.png$/.test(path)) {
    td.textContent = "-";
    return;
  }
  const link = document.createElement("a");
  link.href = path;
  link.target = "_blank";
  link.rel = "noopener";
  const img = document.createElement("img");
  img.src = path;
  img.alt = "incident chart";
  img.className = "thumb";
  link.appendChild(img);
  td.appendChild(link);
}

function legRows(status) {
  const legs = [];
  for (const [account, info] of Object.entries(status.accounts)) {
    for (const leg of info.legs) legs.push({ account, info, leg });
  }
  // Closest to liquidation first; unknown figures first of all (they cannot be judged).
  const key = (x) => (x.leg.distance_to_liquidation === null ? -Infinity : x.leg.distance_to_liquidation);
  legs.sort((a, b) => key(a) - key(b));
  return legs;
}

function render(status) {
  const body = document.querySelector("#legs tbody");
  body.replaceChildren();
  for (const { account, info, leg } of legRows(status)) {
    const row = document.createElement("tr");
    row.dataset.account = account;
    row.dataset.symbol = leg.symbol;
    row.dataset.side = leg.side;
    cell(row, account);
    cell(row, leg.symbol);
    cell(row, leg.side);
    const distance = cell(row, "");
    distance.className = "distance";
    bar(distance, leg.distance_to_liquidation, info.thresholds);
    if (leg.unknown_because) distance.title = leg.unknown_because;
    sparkline(cell(row, ""), leg.history || []);
    cell(row, fmt(leg.liquidation_price) + " / " + fmt(leg.exchange_liquidation_price), "num");
    cell(row, fmt(leg.mark_price), "num mark");
    cell(row, pct(leg.margin_ratio), "num");
    cell(row, fmt(leg.quantity), "num");
    cell(row, fmt(leg.notional, 6), "num");
    cell(row, leg.leverage === null ? "unknown" : fmt(leg.leverage, 4) + "x", "num");
    cell(row, leg.margin_mode || "unknown");
    cell(row, fmt(leg.unrealized_pnl, 6), "num");
    body.appendChild(row);
  }

  const accounts = document.querySelector("#accounts tbody");
  accounts.replaceChildren();
  for (const [account, info] of Object.entries(status.accounts)) {
    const row = document.createElement("tr");
    cell(row, account);
    cell(row, info.state, info.ready ? "" : "sev-critical");
    const streams = Object.entries(info.streams || {}).map(([name, state]) => name + ": " + state);
    cell(row, streams.join(", ") || "-", "wrap");  // one per symbol held: wraps rather than widen the page
    cell(row, (info.silences || []).join("; ") || "-", "wrap");
    cell(row, (info.pending_topups || []).join("; ") || "-", "wrap");
    accounts.appendChild(row);
  }

  const alerts = document.querySelector("#alerts tbody");
  alerts.replaceChildren();
  for (const alert of status.alerts || []) {
    const row = document.createElement("tr");
    cell(row, new Date(alert.ts * 1000).toISOString().replace("T", " ").slice(0, 19));
    cell(row, alert.severity, "sev-" + alert.severity);
    cell(row, alert.resolved ? "resolved" : "firing");
    cell(row, alert.summary, "text");
    cell(row, alert.action || "alert only", "text");
    chart(cell(row, "", "chart"), alert.chart);
    alerts.appendChild(row);
  }
}

async function refresh() {
  const problem = document.getElementById("problem");
  try {
    const response = await fetch("/status", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const status = await response.json();
    render(status);
    problem.hidden = true;
    document.getElementById("updated").textContent =
      "updated " + new Date().toISOString().replace("T", " ").slice(0, 19) + " UTC";
  } catch (error) {
    problem.textContent = "marginguard does not answer (" + error.message + "): what you see may be old";
    problem.hidden = false;
  }
}

refresh();
setInterval(refresh, PERIOD_MS);
