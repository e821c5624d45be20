"""The panel's guard: the token on every request, the Host and Origin checks.

It binds 127.0.0.1 unless told otherwise; every request carries the token (the page's cookie, HttpOnly and
SameSite=Strict, or ``Authorization: Bearer``); a Host header that is not the bound address (DNS rebinding)
and a state-changing request from a foreign Origin get 403.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "swapcam_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def new_token() -> str:
    """A random token for one run."""
    return secrets.token_urlsafe(18)


class Guard:
    """ASGI middleware: Host, Origin and token checks before any route runs."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts  # None: any Host (bound to all interfaces, where no name can be expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "").lower()
        refusal = None
        if self.hosts is not None and host not in self.hosts:
            refusal = (403, f"403 Host {host!r} is not this panel's address — open the URL swapcam printed")
        elif scope["method"] not in SAFE_METHODS and not self._same_origin(headers.get("origin"), host):
            refusal = (403, "403 cross-origin request refused — use the panel's own page, or send no Origin")
        elif not self._authorised(scope, headers):
            refusal = (401, "401 missing or wrong token — open the URL swapcam printed, or send "
                            "Authorization: Bearer TOKEN")
        if refusal is not None:
            response = JSONResponse({"error": refusal[1]}, status_code=refusal[0])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _same_origin(origin: str | None, host: str) -> bool:
        # Scripts (curl) send no Origin; a browser always does on POST/PATCH/DELETE.
        return origin is None or origin.lower() == f"http://{host}"

    def _authorised(self, scope: Scope, headers: Headers) -> bool:
        given = [value for key, value in _query(scope) if key == "token"]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                given.append(value)
        return any(hmac.compare_digest(g.encode(), self.token.encode()) for g in given)


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope.get("query_string", b"").decode("latin-1"))


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """Host header values accepted for a panel bound to ``host``:``port`` (None: any)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    names = {f"{host}:{port}"}
    if host == "127.0.0.1":
        names.add(f"localhost:{port}")
    if ":" in host:
        names = {f"[{host}]:{port}"}
    return frozenset(name.lower() for name in names)
