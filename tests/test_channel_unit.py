"""``loadgen.engine.channel.Channel``: the worker's gevent-friendly end of the coordinator's pipe.

In one process, over a socket pair from ``multiprocessing.Pipe``: the frames
must be exactly those ``multiprocessing.connection.Connection`` reads and
writes, a frame larger than the socket buffer must arrive whole, and a gone
peer must raise ``ChannelClosed`` rather than hang or raise an OSError.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from typing import Any

import orjson
import pytest

from loadgen.engine.channel import Channel, ChannelClosed


def test_frames_interoperate_with_a_multiprocessing_connection() -> None:
    coordinator, worker = mp.Pipe()
    try:
        channel = Channel(worker.fileno())
        channel.send({"type": "ready", "worker": 3})
        assert orjson.loads(coordinator.recv_bytes()) == {"type": "ready", "worker": 3}
        coordinator.send_bytes(orjson.dumps({"type": "start", "at": 12.5}))
        assert channel.recv() == {"type": "start", "at": 12.5}
    finally:
        coordinator.close()
        worker.close()


def test_a_frame_larger_than_the_socket_buffer_arrives_whole() -> None:
    coordinator, worker = mp.Pipe()
    big: dict[str, Any] = {"type": "interval", "hist": "x" * 3_000_000}
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(coordinator.recv_bytes()),
                              daemon=True)
    try:
        reader.start()
        Channel(worker.fileno()).send(big)
        reader.join(timeout=30)
        assert not reader.is_alive()
        assert orjson.loads(received[0]) == big
    finally:
        coordinator.close()
        worker.close()


def test_a_gone_coordinator_is_channel_closed() -> None:
    coordinator, worker = mp.Pipe()
    channel = Channel(worker.fileno())
    coordinator.close()
    try:
        with pytest.raises(ChannelClosed):
            channel.recv()
        with pytest.raises(ChannelClosed):
            for _ in range(100):   # the first writes may still land in the socket buffer
                channel.send({"type": "interval", "pad": "x" * 100_000})
    finally:
        worker.close()


def test_a_frame_cut_short_is_channel_closed() -> None:
    coordinator, worker = mp.Pipe()
    channel = Channel(worker.fileno())
    payload = orjson.dumps({"type": "start"})
    # a header announcing more than follows, then the coordinator dies
    os.write(coordinator.fileno(), len(payload).to_bytes(4, "big") + payload[:3])
    coordinator.close()
    try:
        with pytest.raises(ChannelClosed):
            channel.recv()
    finally:
        worker.close()
