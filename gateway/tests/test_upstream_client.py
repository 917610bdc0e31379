"""The proxy's HTTP/1.1 client against a real local server whose every answer a test scripts:
keep-alive reuse, the three ways an answer ends, HEAD, interim answers, stale connections,
timeouts, the pool limit and uploads (chunked, or cut short by an early answer)."""

from __future__ import annotations

import asyncio
import contextlib
import gc

import pytest

from techbridge_gateway.proxy.upstream import ConnectFailed, ConnectionBroken, ReadTimeout, Upstream


class ScriptedServer:
    """Accepts connections and answers each request with `answer(request)`: bytes to write,
    (bytes, True) to write them and close the connection, or None to close it without a word.
    Requests are recorded with the connection they arrived on and their place on it."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[dict] = []
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections += 1
        connection = self.connections
        with contextlib.suppress(asyncio.CancelledError):  # the test is over
            await self._converse(reader, writer, connection)

    async def _converse(self, reader, writer, connection):
        index = 0
        try:
            while True:
                index += 1
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                request = {"method": method, "target": target, "headers": headers, "connection": connection,
                           "index": index}
                try:
                    if "content-length" in headers and not headers.get("x-answer-early"):
                        request["body"] = await reader.readexactly(int(headers["content-length"]))
                    elif headers.get("transfer-encoding") == "chunked":
                        request["body"] = await _read_chunked(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return  # the upload was cut short
                self.requests.append(request)
                answer = await self.answer(request) if asyncio.iscoroutinefunction(self.answer) else self.answer(request)
                if answer is None:
                    return
                answer, close = answer if isinstance(answer, tuple) else (answer, False)
                writer.write(answer)
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return body
        body += chunk[:-2]


def ok(body: bytes = b"hello", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def client(port: int, **overrides) -> Upstream:
    options = dict(max_connections=4, keepalive_s=30, connect_timeout_s=1, read_timeout_s=2)
    options.update(overrides)
    return Upstream(f"http://127.0.0.1:{port}", **options)


async def fetch(up: Upstream, method: str = "GET", target: bytes = b"/x", headers=(), body=None, body_length=None):
    response = await up.request(method, target, list(headers), body, body_length=body_length)
    return response.status, await response.read(), response


async def test_keep_alive_connection_is_reused_and_requests_arrive_as_sent():
    async with ScriptedServer(lambda r: ok(r["target"].encode())) as srv:
        up = client(srv.port)
        for i in range(3):
            status, body, _ = await fetch(up, target=f"/a/{i}?q=%E9%94%82".encode(), headers=[(b"x-one", b"1")])
            assert (status, body) == (200, f"/a/{i}?q=%E9%94%82".encode())
        assert srv.connections == 1
        assert srv.requests[0]["headers"]["host"] == f"127.0.0.1:{srv.port}"
        assert srv.requests[0]["headers"]["x-one"] == "1"
        assert "content-length" not in srv.requests[0]["headers"]  # a GET without a body
        await up.aclose()


async def test_path_prefix_of_the_base_url_is_kept():
    async with ScriptedServer(lambda r: ok(r["target"].encode())) as srv:
        up = Upstream(f"http://127.0.0.1:{srv.port}/inner/", max_connections=2, keepalive_s=30,
                      connect_timeout_s=1, read_timeout_s=2)
        assert (await fetch(up, target=b"/api/v1/x"))[1] == b"/inner/api/v1/x"
        await up.aclose()


async def test_chunked_answer_is_decoded_and_the_connection_reused():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with ScriptedServer(lambda r: chunked) as srv:
        up = client(srv.port)
        response = await up.request("GET", b"/", [])
        assert response.content_length is None
        assert b"".join([c async for c in response.iter_chunks()]) == b"hello world"
        status, body, _ = await fetch(up)
        assert (status, body) == (200, b"hello world")
        assert srv.connections == 1
        await up.aclose()


async def test_answer_delimited_by_the_end_of_the_connection():
    def answer(r):
        return b"HTTP/1.0 200 OK\r\n\r\nall of it", True

    async with ScriptedServer(answer) as srv:
        up = client(srv.port)
        status, body, response = await fetch(up)
        assert (status, body) == (200, b"all of it")
        # Not reusable: the next request opens another connection.
        assert (await fetch(up))[1] == b"all of it"
        assert srv.connections == 2
        await up.aclose()


async def test_head_answer_has_no_body_whatever_its_length_says():
    async with ScriptedServer(lambda r: b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                              if r["method"] == "HEAD" else ok(b"after")) as srv:
        up = client(srv.port)
        status, body, response = await fetch(up, "HEAD")
        assert (status, body, response.content_length) == (200, b"", 1234)
        assert (await fetch(up))[1] == b"after"
        assert srv.connections == 1
        await up.aclose()


async def test_interim_answers_are_skipped():
    async with ScriptedServer(lambda r: b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(b"final")) as srv:
        up = client(srv.port)
        status, body, response = await fetch(up)
        assert (status, body) == (200, b"final")
        assert all(name.lower() != b"link" for name, _ in response.raw_headers)
        await up.aclose()


async def test_stale_connection_is_retried_once_for_safe_requests_only():
    # Each connection's first request is answered; a second one on the same connection finds
    # it closed without a word (as when a server's idle timeout strikes just as it is reused).
    async with ScriptedServer(lambda r: ok() if r["index"] == 1 else None) as srv:
        up = client(srv.port)
        assert (await fetch(up))[0] == 200
        assert (await fetch(up))[0] == 200  # the reused connection was stale: sent again on a new one
        assert srv.connections == 2
        with pytest.raises(ConnectionBroken):
            await fetch(up, "POST", body=b"{}")  # not safe to send twice
        assert (await fetch(up))[0] == 200
        assert (await fetch(up, "POST", headers=[(b"Idempotency-Key", b"k1")], body=b"{}"))[0] == 200
        assert srv.connections == 4
        assert [r["method"] for r in srv.requests if r["index"] == 1] == ["GET", "GET", "GET", "POST"]
        await up.aclose()


async def test_idle_connections_expire():
    async with ScriptedServer(lambda r: ok()) as srv:
        up = client(srv.port, keepalive_s=0.05)
        await fetch(up)
        await asyncio.sleep(0.1)
        await fetch(up)
        assert srv.connections == 2
        await up.aclose()


async def test_read_timeout():
    async def answer(r):
        await asyncio.sleep(1)
        return ok()

    async with ScriptedServer(answer) as srv:
        up = client(srv.port, read_timeout_s=0.2)
        with pytest.raises(ReadTimeout):
            await up.request("GET", b"/", [])
        await up.aclose()


async def test_nothing_listening_is_a_connect_failure():
    async with ScriptedServer(lambda r: ok()) as srv:
        port = srv.port
    up = client(port)
    with pytest.raises(ConnectFailed):
        await up.request("GET", b"/", [])
    assert up.open_connections == 0


async def test_pool_limit_queues_requests_and_gives_up_after_the_connect_timeout():
    release = asyncio.Event()

    async def answer(r):
        if r["target"] == "/slow":
            await release.wait()
        return ok()

    async with ScriptedServer(answer) as srv:
        up = client(srv.port, max_connections=1, connect_timeout_s=0.2)
        slow = asyncio.ensure_future(fetch(up, target=b"/slow"))
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectFailed):
            await fetch(up, target=b"/fast")  # the only connection stays busy past the timeout
        waiting = asyncio.ensure_future(fetch(up, target=b"/fast"))
        await asyncio.sleep(0.05)
        release.set()
        assert (await slow)[0] == 200 and (await waiting)[0] == 200
        assert srv.connections == 1
        await up.aclose()


async def test_uploads_of_unknown_and_known_length():
    async def parts():
        for piece in (b"ab", b"", b"cde"):
            yield piece

    async with ScriptedServer(lambda r: ok(r["body"])) as srv:
        up = client(srv.port)
        assert (await fetch(up, "POST", body=parts()))[1] == b"abcde"
        assert srv.requests[-1]["headers"]["transfer-encoding"] == "chunked"
        assert (await fetch(up, "PUT", body=parts(), body_length=5))[1] == b"abcde"
        assert srv.requests[-1]["headers"]["content-length"] == "5"
        assert (await fetch(up, "POST", body=b""))[1] == b""
        assert srv.requests[-1]["headers"]["content-length"] == "0"
        assert srv.connections == 1
        await up.aclose()


async def test_an_early_answer_stops_the_upload_and_retires_the_connection():
    never_ends = asyncio.Event()

    async def endless():
        yield b"x" * 1000
        await never_ends.wait()
        yield b"never sent"

    async with ScriptedServer(lambda r: b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n") as srv:
        up = client(srv.port)
        status, _, _ = await fetch(up, "POST", headers=[(b"x-answer-early", b"1")], body=endless(), body_length=10**9)
        assert status == 413
        await fetch(up)
        assert srv.connections == 2  # the cut connection was not used again
        await up.aclose()


async def test_connection_broken_mid_answer():
    async with ScriptedServer(lambda r: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part", True)) as srv:
        up = client(srv.port)
        response = await up.request("GET", b"/", [])
        with pytest.raises(ConnectionBroken):
            await response.read()
        assert up.open_connections == 0
        await up.aclose()


async def test_an_upload_that_fails_leaves_no_unanswered_failure_behind():
    """When the caller's body fails mid-upload, the exchange gives up; the connection's later loss
    must not fail a future nobody waits for any more (asyncio would log it as never retrieved)."""
    class CallerGone(Exception):
        pass

    async def breaks():
        yield b"x" * 100
        raise CallerGone()

    gc.collect()  # what earlier tests left behind is not this test's business
    reported: list[dict] = []
    loop = asyncio.get_running_loop()
    former = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with ScriptedServer(lambda r: None) as srv:
            up = client(srv.port)
            with pytest.raises(CallerGone):
                await fetch(up, "POST", body=breaks())
            await up.aclose()
            await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(former)
    assert [c for c in reported if c.get("message") == "Future exception was never retrieved"] == []
