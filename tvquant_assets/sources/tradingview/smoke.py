"""``tvquant sources check --manifest M``: a live smoke test of the TradingView source (about a minute).

One line per point, ``pass`` or ``FAIL`` with the cause: the websocket handshake, one screener page, one
symbol's whole history over at least two pages ending with the server's end marker, the dating of one
overnight symbol (bars stamped the evening before belong to the next trading date), and catalog parity
with a fresh scan. Exit 0 when all pass, 1 when any fails, 2 (one line) when the network is unreachable.
Nothing is written to the lake except the day's screener snapshot the parity check needs.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time

import pandas as pd

from tvquant_assets.errors import SourceError
from tvquant_assets.manifest import Manifest

OVERNIGHT = {"symbol": "OANDA:XAUUSD", "calendar": "24/5"}
HISTORY_PAGE = 1000


class NoNetwork(Exception):
    """The endpoints cannot be reached at all (DNS, refused, unreachable)."""


def _reachable(url: str, timeout: float) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise NoNetwork(f"cannot reach {parts.hostname}:{port} ({type(exc).__name__}: {exc})") from None


def run_checks(manifest: Manifest, lake_root=None, out=print) -> int:
    """Run every point against ``manifest``'s source; returns the exit code."""
    from tvquant_assets.sources.tradingview import calendars
    from tvquant_assets.sources.tradingview.presets import build_payload, resolve_preset
    from tvquant_assets.sources.tradingview.source import TradingViewSource
    from tvquant_assets.sources.tradingview.websocket import ChartClient

    if manifest.source.kind != "tradingview":
        out(f"{manifest.name}: source {manifest.source.kind} is not live; nothing to check")
        return 0
    cfg = manifest.source
    try:
        _reachable(cfg.websocket_url, cfg.timeout_s)
        _reachable(cfg.scanner_url, cfg.timeout_s)
    except NoNetwork as exc:
        out(f"no network: {exc}")
        return 2
    src = TradingViewSource(**cfg.model_dump(exclude={"kind"}))
    src.attach_lake(lake_root or tempfile.mkdtemp(prefix="tvquant-check-"))
    failed = 0

    def point(name: str, fn) -> None:
        nonlocal failed
        t0 = time.monotonic()
        try:
            detail = fn()
            out(f"pass  {name}: {detail} ({time.monotonic() - t0:.1f} s)")
        except (SourceError, AssertionError, ValueError) as exc:
            failed += 1
            out(f"FAIL  {name}: {exc}")

    quick = ChartClient(cfg.websocket_url, src.chart.policy, cfg.timeout_s, 10, cfg.time_budget_s,
                        auth_token=src.chart._auth_token)
    state: dict = {}

    def handshake():
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        from tvquant_assets.sources.tradingview.websocket import BROWSER_HEADERS, ORIGIN, USER_AGENT, decode, message

        token = src.chart.token()
        try:
            with connect(quick.url, origin=ORIGIN, user_agent_header=USER_AGENT, additional_headers=BROWSER_HEADERS,
                         open_timeout=cfg.timeout_s, close_timeout=1) as ws:
                hello = decode(ws.recv(timeout=cfg.timeout_s))
                ws.send(message("set_auth_token", token))
        except InvalidStatus as exc:
            raise SourceError(f"websocket handshake: HTTP {exc.response.status_code} (refused)") from None
        except (OSError, TimeoutError) as exc:
            raise SourceError(f"websocket handshake: {type(exc).__name__}: {exc}") from None
        assert hello and "session_id" in hello[0], f"no hello from the server: {hello[:1]!r}"
        who = "the token of TVQUANT_TV_SESSIONID" if src.chart._auth_token.authenticated else "the anonymous token"
        return f"{quick.url.split('?')[0]} accepted a browser handshake; {who}"

    def scanner():
        preset = resolve_preset(cfg.scans[0].preset, cfg.presets)
        body = src.screener.policy.run("screener page", lambda: src.screener._post(
            preset["market"], build_payload(preset, cfg.scans[0].direction, 0, 50)))
        assert body["data"], f"preset {preset['name']!r} returned no rows (totalCount {body['totalCount']})"
        state["symbol"] = body["data"][0]["s"]
        return f"{len(body['data'])} of {body['totalCount']} rows of preset {preset['name']!r}"

    def history():
        sym = state.get("symbol")
        assert sym, "no symbol (the scanner point failed)"
        client = ChartClient(cfg.websocket_url, src.chart.policy, cfg.timeout_s, HISTORY_PAGE, cfg.time_budget_s,
                             auth_token=src.chart._auth_token)
        bars, _ = client.history(sym, pd.Timestamp("1970-01-01"), calendar=cfg.exchange_calendar)
        probe = client.last_fetch
        assert probe["pages"] >= 2, f"{sym}: {len(bars)} bars in {probe['pages']} page(s); need a longer history"
        assert probe["ended"], f"{sym}: {probe['pages']} pages without the server's data_completed end marker"
        return f"{sym}: {len(bars)} bars in {probe['pages']} pages, ended by data_completed"

    def dating():
        sym, cal = OVERNIGHT["symbol"], OVERNIGHT["calendar"]
        client = ChartClient(cfg.websocket_url, src.chart.policy, cfg.timeout_s, 30, cfg.time_budget_s,
                             auth_token=src.chart._auth_token)
        bars, _ = client.history(sym, pd.Timestamp("1970-01-01"), first_request=15, calendar=cal)
        probe = client.last_fetch
        local = pd.to_datetime(pd.Index(probe["stamps"], dtype="float64"), unit="s", utc=True).tz_convert(
            probe["timezone"])
        morning = [f"{t:%a %H:%M}" for t in local if t.hour < calendars.EVENING_HOUR]
        assert not morning, f"{sym}: bars stamped {', '.join(morning[:3])} {probe['timezone']}, not the evening " \
                            "before: the session dating rule no longer matches the service"
        assert len(bars), f"{sym}: no bars"
        assert (bars["date"].dt.day_of_week <= 4).all(), f"{sym}: a bar dated on a weekend"
        return f"{sym}: {len(bars)} bars stamped the evening before, filed under the next trading date"

    def parity():
        report = src.live_parity()
        assert report.empty, f"{len(report)} mismatch(es) in {', '.join(sorted(set(report['field'])))} " \
                             f"({', '.join(sorted(set(report['symbol']))[:5])})"
        return "stored catalog agrees with a fresh scan"

    point("handshake", handshake)
    point("scanner", scanner)
    point("history", history)
    point("dating", dating)
    point("parity", parity)
    out(f"{5 - failed}/5 passed" + ("" if not failed else f"; {failed} failed"))
    return 1 if failed else 0


def main(manifest_ref: str, lake_root=None) -> int:
    from tvquant_assets.manifest import resolve_manifest

    _, manifest = resolve_manifest(manifest_ref)
    return run_checks(manifest, lake_root, out=lambda line: print(line, file=sys.stdout, flush=True))
