"""``engine.client.Keeper``: what an endpoint with checks keeps of a response, fed to its
httptools parser directly (the bytes a server would send; no socket)."""

from __future__ import annotations

from loadgen.engine.client import Keeper

CHUNKED = (b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
           b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Id: 7\r\n\r\n"
           b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")


def _feed(keeper: Keeper, data: bytes, step: int) -> Keeper:
    for i in range(0, len(data), step):   # as recv_into would cut it
        keeper.parser.feed_data(data[i:i + step])
    return keeper


def test_keeps_the_final_responses_headers_and_whole_body() -> None:
    for step in (1, 7, len(CHUNKED)):
        keeper = _feed(Keeper(1 << 20), CHUNKED, step)
        assert keeper.done and keeper.status == 201 and not keeper.extra
        assert keeper.headers == [(b"Transfer-Encoding", b"chunked"), (b"X-Id", b"7")]
        assert keeper.body() == b"abcdef"


def test_a_body_over_max_body_is_not_kept_but_still_framed() -> None:
    keeper = _feed(Keeper(5), CHUNKED, 4)
    assert keeper.done and keeper.body() is None
    exact = _feed(Keeper(6), CHUNKED, 4)
    assert exact.body() == b"abcdef"


def test_bytes_after_the_response_are_extra_and_not_kept() -> None:
    data = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad")
    keeper = _feed(Keeper(100), data, len(data))
    assert keeper.extra and keeper.body() == b"ok"
    assert keeper.headers == [(b"Content-Length", b"2")]


def test_a_head_response_keeps_headers_and_no_body() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    keeper = _feed(Keeper(100, head=True), data, len(data))
    assert keeper.headers_done and keeper.headers == [(b"Content-Length", b"5")]
    assert keeper.body() == b""
