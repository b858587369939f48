"""The chart websocket's auth token: the user's (from ``TVQUANT_TV_SESSIONID``) or the anonymous one.

As the public clients do (TradingView-API's ``getUser``), the user's token is read from TradingView's home
page fetched with the browser session cookie ``sessionid`` (and ``sessionid_sign`` when
``TVQUANT_TV_SESSIONID_SIGN`` is set): the page embeds ``"auth_token":"..."``. With it the websocket serves
more history and real-time bars; without the variable the token is ``unauthorized_user_token``.
The session id and the token are secrets: never logged, never in metadata or error messages.
"""

from __future__ import annotations

import os
import re

import requests

from tvquant_assets.errors import SourceError
from tvquant_assets.sources.tradingview.screener import RetryableError, RetryPolicy

SESSION_ENV = "TVQUANT_TV_SESSIONID"
SIGN_ENV = "TVQUANT_TV_SESSIONID_SIGN"
ANONYMOUS = "unauthorized_user_token"
TOKEN_RE = re.compile(r'"auth_token":"([^"]+)"')


class TokenProvider:
    """Callable returning the token, fetched once per process on first use."""

    def __init__(self, url: str, policy: RetryPolicy, timeout_s: float = 30.0) -> None:
        self.url, self.policy, self.timeout_s = url, policy, timeout_s
        self._token: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"TokenProvider({self.url!r})"

    @property
    def authenticated(self) -> bool:
        return bool(os.environ.get(SESSION_ENV))

    def __call__(self) -> str:
        session = os.environ.get(SESSION_ENV)
        if not session:
            return ANONYMOUS
        if self._token is None:
            self._token = self.policy.run("tradingview sign-in", lambda: self._fetch(session))
        return self._token

    def _fetch(self, session: str) -> str:
        from tvquant_assets.sources.tradingview.websocket import BROWSER_HEADERS, USER_AGENT

        cookie = f"sessionid={session}"
        if os.environ.get(SIGN_ENV):
            cookie += f";sessionid_sign={os.environ[SIGN_ENV]}"
        try:
            resp = requests.get(self.url, headers={"cookie": cookie, "user-agent": USER_AGENT, **BROWSER_HEADERS},
                                timeout=self.timeout_s, allow_redirects=True)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetryableError(f"{self.url}: {type(exc).__name__}") from None
        if resp.status_code in (429, 500, 502, 503, 504):
            raise RetryableError(f"{self.url}: HTTP {resp.status_code}")
        found = TOKEN_RE.search(resp.text) if resp.status_code == 200 else None
        if not found:
            raise SourceError(f"{SESSION_ENV}: TradingView did not accept the session (HTTP {resp.status_code}, "
                              "no auth_token in the page): the sessionid is wrong or expired; unset it to "
                              "fetch anonymously")
        return found.group(1)
