"""A deliberately small HTTP/1.1 server on asyncio streams: one request per connection.

The dashboard serves one page and one form post to an operator; the standard library is
enough, and no web framework becomes a dependency of the ``cli`` extra. Requests are bounded
(request line and headers by the stream's limit, at most :data:`MAX_HEADERS` headers, bodies
up to :data:`MAX_BODY` bytes, :data:`READ_TIMEOUT` seconds to send them); anything else is a
``400`` and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

__all__ = ["Request", "Response", "serve_http"]

log = logging.getLogger("cqrs_ddd.dashboard")

MAX_HEADERS = 100
MAX_BODY = 64 * 1024
READ_TIMEOUT = 10.0
#: Sent with every response: no script at all, styles and images inline, forms to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BadRequest(Exception):
    """A request this server does not accept (malformed, too large, too slow)."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    form: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    body: str = ""
    content_type: str = "text/html; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        payload = self.body.encode()
        lines = [f"HTTP/1.1 {self.status.value} {self.status.phrase}"]
        headers = {
            "Content-Type": self.content_type,
            "Content-Length": str(len(payload)),
            "Connection": "close",
            **SECURITY_HEADERS,
            **self.headers,
        }
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


Handler = Callable[[Request], Awaitable[Response]]


async def read_request(reader: asyncio.StreamReader) -> Request:
    """Parse one request (``BadRequest`` when it is not one this server takes)."""
    try:
        line = (await reader.readuntil(b"\r\n")).decode("latin-1").rstrip("\r\n")
        method, target, version = line.split(" ")
    except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise BadRequest("malformed request line") from exc
    if not version.startswith("HTTP/1."):
        raise BadRequest("HTTP/1.x only")
    headers: dict[str, str] = {}
    while True:
        try:
            raw = (await reader.readuntil(b"\r\n")).decode("latin-1").rstrip("\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise BadRequest("malformed headers") from exc
        if not raw:
            break
        name, sep, value = raw.partition(":")
        if not sep or len(headers) >= MAX_HEADERS:
            raise BadRequest("malformed or too many headers")
        headers[name.strip().lower()] = value.strip()
    form: dict[str, list[str]] = {}
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > MAX_BODY:
        raise BadRequest("missing or too large body")
    if int(length_text):
        try:
            body = await reader.readexactly(int(length_text))
        except asyncio.IncompleteReadError as exc:
            raise BadRequest("truncated body") from exc
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = _parse_qs(body.decode("utf-8", "replace"))
    split = urlsplit(target)
    return Request(method.upper(), split.path or "/", _parse_qs(split.query), headers, form)


def _parse_qs(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=1000)
    except ValueError as exc:  # too many fields
        raise BadRequest(str(exc)) from exc


async def _connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                request = await read_request(reader)
        except (BadRequest, TimeoutError) as exc:
            response = Response(HTTPStatus.BAD_REQUEST, f"bad request: {exc}", "text/plain")
        else:
            response = await handler(request)
        writer.write(response.encode())
        await writer.drain()
    except ConnectionError:
        pass  # the browser went away: nothing to answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def serve_http(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` (port 0: a free one) and answer with ``handler``."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _connection(handler, reader, writer)

    return await asyncio.start_server(on_connect, host, port, limit=16 * 1024)
