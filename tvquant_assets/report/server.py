"""A loopback web server for the tearsheets, so the Dagster UI's ``tearsheet_url`` link opens (browsers
refuse ``file://`` links from an http page). ``tvquant ui`` starts it beside ``dagster dev``.

It serves only ``/<manifest>/report/<YYYY-MM-DD>.html`` under the lake root (no parquet file, no ledger,
no directory listing), read-only, on 127.0.0.1. No Dagster here.
"""

from __future__ import annotations

import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPORTS_URL_ENV = "TVQUANT_REPORTS_URL"
DEFAULT_PORT = 3001
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_REPORT_PATH = re.compile(r"^/([A-Za-z0-9][A-Za-z0-9_.\-]{0,127})/report/(\d{4}-\d{2}-\d{2})\.html$")


def reports_base_url() -> str:
    return (os.environ.get(REPORTS_URL_ENV) or DEFAULT_URL).rstrip("/")


def report_url(lake_root: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """The server's URL of a tearsheet file under a local lake root (None when it is not under it)."""
    try:
        rel = Path(path).resolve().relative_to(Path(lake_root).resolve())
    except ValueError:
        return None
    url = "/" + rel.as_posix()
    return reports_base_url() + url if _REPORT_PATH.match(url) else None


def _handler(root: Path):
    class ReportHandler(BaseHTTPRequestHandler):
        server_version = "tvquant-reports"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            match = _REPORT_PATH.match(unquote(urlsplit(self.path).path))
            file = root / match.group(1) / "report" / f"{match.group(2)}.html" if match else None
            if file is None or not file.is_file():
                self.send_error(HTTPStatus.NOT_FOUND, "no such tearsheet (materialize <manifest>/report first)")
                return
            data = file.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # quiet: dagster dev owns the terminal
            return

    return ReportHandler


def start(lake_root: str | os.PathLike, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve the tearsheets of ``lake_root`` on ``host:port`` from a daemon thread; returns the server."""
    server = ThreadingHTTPServer((host, port), _handler(Path(lake_root).resolve()))
    threading.Thread(target=server.serve_forever, name="tvquant-reports", daemon=True).start()
    return server


__all__ = ["DEFAULT_PORT", "REPORTS_URL_ENV", "report_url", "reports_base_url", "start"]
