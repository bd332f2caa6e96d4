"""The worker's end of its pipe, made cooperative for gevent.

``Connection.send_bytes`` / ``recv_bytes`` block the whole process, which in
a gevent worker stalls every greenlet (and so every in-flight request).  This
speaks the same framing as ``multiprocessing.connection.Connection`` (a
4-byte big-endian length, then the payload) with gevent's non-blocking
``nb_write`` / ``nb_read``, so the coordinator keeps using an ordinary
Connection on its side.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson
from gevent import os as gos
from gevent.lock import Semaphore

_HEADER = struct.Struct("!i")


class ChannelClosed(Exception):
    """The coordinator's end is gone (it exited or was killed)."""


class Channel:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        gos.make_nonblocking(fd)
        self._write_lock = Semaphore()  # frames from several greenlets must not interleave

    def send(self, message: dict[str, Any]) -> None:
        payload = orjson.dumps(message)
        data = memoryview(_HEADER.pack(len(payload)) + payload)
        with self._write_lock:
            while data:
                try:
                    n = gos.nb_write(self.fd, data)
                except (BrokenPipeError, ConnectionResetError):
                    raise ChannelClosed() from None
                data = data[n:]

    def recv(self) -> dict[str, Any]:
        (size,) = _HEADER.unpack(self._read_exactly(_HEADER.size))
        return orjson.loads(self._read_exactly(size))

    def _read_exactly(self, size: int) -> bytes:
        chunks = []
        while size:
            try:
                chunk = gos.nb_read(self.fd, size)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ChannelClosed()
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)
