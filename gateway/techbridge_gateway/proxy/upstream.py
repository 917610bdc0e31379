"""A lean HTTP/1.1 client for the proxy: keep-alive connections to one service each.

The proxy's own work per request is small (a cached token check, a rate-limit bucket, an HMAC);
a general-purpose client (aiohttp, httpx) spends more Python than all of it on every request.
This one does only what forwarding needs: it writes one prepared request head, streams or
writes the body, and parses the answer with httptools (the parser uvicorn uses) straight into
a status, raw headers and body chunks.

What it keeps from a full client: a bounded pool per service (waiting for a free connection
counts against the connect timeout), idle connections closed after `keepalive_s`, a read
timeout between two arrivals of the answer, flow control both ways (an upload waits while the
service's socket is full; a streamed answer stops reading while the caller is slower), chunked
uploads of unknown length, answers delimited by length, by chunks or by the end of the
connection, and one retry on a fresh connection when a reused one turns out to have been
closed by the service before it answered, for requests that are safe to send twice.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

# Requests a service may receive twice without a second effect (RFC 9110 §9.2.2), and those
# carrying an Idempotency-Key, which the services answer once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A streamed answer stops reading from the service while this much waits for a slower caller.
STREAM_HIGH_WATER = 256 * 1024


class UpstreamError(Exception):
    """The service could not be asked or did not answer properly."""


class ConnectFailed(UpstreamError):
    """No connection: refused, unreachable, or none free or made within the connect timeout."""


class ReadTimeout(UpstreamError):
    """The service went quiet for longer than the read timeout."""


class ConnectionBroken(UpstreamError):
    """The connection closed or broke before the answer was complete."""


class Upstream:
    """Pooled keep-alive connections to one service at `base_url` (http or https, optionally
    with a path prefix)."""

    def __init__(self, base_url: str, *, max_connections: int, keepalive_s: float,
                 connect_timeout_s: float, read_timeout_s: float):
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        default_port = self.port == (443 if self.ssl else 80)
        self._host_line = f"Host: {url.hostname if default_port else f'{url.hostname}:{self.port}'}\r\n".encode()
        self._prefix = url.path.rstrip("/").encode()
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    async def request(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes | AsyncIterator[bytes] | None = None,
                      body_length: int | None = None) -> UpstreamResponse:
        """Send a request and return once the answer's status and headers have arrived.

        `target` is the path and query (percent-encoded, as received); `headers` must not hold
        Host or framing headers (Content-Length, Transfer-Encoding): those are written here.
        `body` is bytes, or an async iterator of chunks (`body_length` bytes in all when known,
        else sent chunked). The caller must `release()` or `close()` the response."""
        head = self._head(method, target, headers, body, body_length)
        retry_allowed = not isinstance(body, AsyncIterator) and (
            method in IDEMPOTENT_METHODS or any(k.lower() == b"idempotency-key" for k, _ in headers))
        while True:
            conn, reused = await self._acquire()
            try:
                return await conn.exchange(method, head, body, body_length)
            except _ClosedBeforeAnswer:
                conn.close()
                if not (reused and retry_allowed):
                    raise ConnectionBroken("the service closed the connection before answering") from None
                retry_allowed = False  # once, on a fresh connection
            except BaseException:
                conn.close()
                raise

    def _head(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
              body, body_length: int | None) -> bytes:
        lines = [b"%s %s%s HTTP/1.1\r\n" % (method.encode(), self._prefix, target), self._host_line]
        lines += [b"%s: %s\r\n" % pair for pair in headers]
        if isinstance(body, bytes):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        elif body is not None:
            lines.append(b"Content-Length: %d\r\n" % body_length if body_length is not None
                         else b"Transfer-Encoding: chunked\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    # --- the pool ---------------------------------------------------------------------------------
    async def _acquire(self) -> tuple[_Connection, bool]:
        deadline = None
        while True:
            now = time.monotonic()
            while self._idle:
                conn = self._idle.pop()  # the most recently used: the least likely to be stale
                if conn.usable(now - self.keepalive_s):
                    return conn, True
                conn.close()
            if self._closed:
                raise ConnectFailed("the client is closed")
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._forget()
                    raise
            # Every connection is busy: wait for one to come back, within the connect timeout.
            deadline = deadline or now + self.connect_timeout_s
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - now, 0))
            except TimeoutError:
                raise ConnectFailed(f"no free connection within {self.connect_timeout_s:g}s") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port, ssl=self.ssl),
                self.connect_timeout_s)
        except TimeoutError:
            raise ConnectFailed(f"no connection within {self.connect_timeout_s:g}s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect: {exc}") from None
        return conn

    def _give_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake_one()

    def _forget(self) -> None:
        """A connection is gone for good: room for a new one."""
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class _ClosedBeforeAnswer(Exception):
    """The connection ended before a single byte of the answer: maybe a stale keep-alive one."""


class UpstreamResponse:
    """The service's answer: status and raw headers at once, the body read whole or streamed."""

    def __init__(self, conn: _Connection):
        self._conn = conn
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.keep_alive = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self.complete = False
        self._error: BaseException | None = None
        self._arrival: asyncio.Future | None = None
        self._done = False

    async def read(self) -> bytes:
        """The whole body."""
        parts = [chunk async for chunk in self.iter_chunks()]
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection goes back to the pool after the last chunk."""
        conn = self._conn
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered < STREAM_HIGH_WATER:
                    conn.resume_reading()
                yield chunk
            if self.complete:
                self.release()
                return
            if self._error is not None:
                raise self._error
            self._arrival = asyncio.get_running_loop().create_future()
            await conn.wait(self._arrival)

    def release(self) -> None:
        """Done with the answer: its connection is reused if the answer was read to the end and
        both sides keep the connection alive, otherwise closed."""
        if self._done:
            return
        self._done = True
        self._conn.finished(reusable=self.complete and self.keep_alive and self._error is None)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._conn.finished(reusable=False)

    # --- fed by the connection --------------------------------------------------------------------
    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= STREAM_HIGH_WATER:
            self._conn.pause_reading()
        self._wake()

    def _end(self, error: BaseException | None = None) -> None:
        if error is None:
            self.complete = True
        elif not self.complete:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, answering one request at a time."""

    def __init__(self, upstream: Upstream):
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.lost = False
        self._parser: httptools.HttpResponseParser | None = None
        self._response: UpstreamResponse | None = None
        self._head_received: asyncio.Future | None = None
        self._method = ""
        self._bytes_seen = False
        self._chunked = False
        self._reading_paused = False
        self._write_ready: asyncio.Future | None = None
        self._upload_cut = False
        self._accounted = True  # counted in the upstream's open connections until closed

    # --- one exchange -----------------------------------------------------------------------------
    def usable(self, fresh_after: float) -> bool:
        return not self.lost and self.idle_since >= fresh_after and not self.transport.is_closing()

    async def exchange(self, method: str, head: bytes, body, body_length: int | None) -> UpstreamResponse:
        self._method = method
        self._bytes_seen = False
        self._chunked = False
        self._response = UpstreamResponse(self)
        self._parser = httptools.HttpResponseParser(self)
        self._head_received = asyncio.get_running_loop().create_future()
        if self.lost:
            raise _ClosedBeforeAnswer()
        if body is None or isinstance(body, bytes):
            self.transport.write(head + body if body else head)
            await self.wait(self._head_received)
            return self._response
        self.transport.write(head)
        upload = asyncio.ensure_future(self._upload(body, chunked=body_length is None))
        try:
            # The service may answer before the whole body is sent (a refusal): its answer is
            # what counts, and the rest of the body is not sent.
            await self.wait(self._head_received, also=upload)
        finally:
            if not upload.done():
                upload.cancel()
                self._upload_cut = True  # the connection cannot carry another request
        return self._response

    async def _upload(self, chunks: AsyncIterator[bytes], chunked: bool) -> None:
        async for chunk in chunks:
            if not chunk:  # an empty chunk would end a chunked body
                continue
            if self.lost:
                raise ConnectionBroken("the service closed the connection during the upload")
            if chunked:
                self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                self.transport.write(chunk)
            if self._write_ready is not None:
                await self.wait(self._write_ready)
        if chunked:
            self.transport.write(b"0\r\n\r\n")

    async def wait(self, fut: asyncio.Future, also: asyncio.Future | None = None) -> None:
        """Wait for `fut` while the service keeps sending within the read timeout."""
        timer = asyncio.get_running_loop().call_later(self.upstream.read_timeout_s, _expire, fut)
        try:
            if also is None:
                await fut
            else:
                await asyncio.wait((fut, also), return_when=asyncio.FIRST_COMPLETED)
                if also.done() and not fut.done() and also.exception() is not None:
                    raise also.exception()
                if not fut.done():
                    await fut
        finally:
            timer.cancel()
            if not fut.done():
                # Given up on (the upload failed, or the caller was cancelled): nobody waits for
                # it any more, so the connection's loss must not fail it unseen.
                fut.cancel()

    def finished(self, reusable: bool) -> None:
        self._response = None
        self._parser = None
        if reusable and not self.lost and not self._upload_cut:
            self.upstream._give_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()
        if self._accounted:
            self._accounted = False
            self.upstream._forget()

    # --- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # nothing was asked: the service is not speaking HTTP/1.1 to us
            self.close()
            return
        self._bytes_seen = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"malformed answer from the service: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        response = self._response
        if response is not None:
            if self._head_received.done() and not self._chunked and response.content_length is None:
                response._end()  # an answer delimited by the end of the connection
            elif not self._bytes_seen and not self._head_received.done():
                self._head_received.set_exception(_ClosedBeforeAnswer())
            else:
                self._fail(ConnectionBroken("the service closed the connection mid-answer"))
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        if self._accounted:
            self._accounted = False
            self.upstream._forget()

    def pause_writing(self) -> None:
        self._write_ready = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)
        self._write_ready = None

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.lost:
            self._reading_paused = False
            self.transport.resume_reading()

    def _fail(self, error: BaseException) -> None:
        if self._head_received is not None and not self._head_received.done():
            self._head_received.set_exception(error)
        if self._response is not None:
            self._response._end(error)
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    # --- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self._response
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (e.g. 103 Early Hints): the real one follows
            response.raw_headers = []
            return
        response.status = status
        response.keep_alive = self._parser.should_keep_alive()
        for name, value in response.raw_headers:
            lowered = name.lower()
            if lowered == b"content-length":
                response.content_length = int(value) if value.strip().isdigit() else None
            elif lowered == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
        if not self._head_received.done():
            self._head_received.set_result(None)
        if self._method == "HEAD" or status in (204, 304):
            response._end()  # no body, whatever the headers say

    def on_body(self, body: bytes) -> None:
        if self._response is not None and not self._response.complete:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is not None and response.status:
            response._end()


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(ReadTimeout("the service did not answer in time"))
