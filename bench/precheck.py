"""Price the check loadgen makes before writing to a kept-alive connection.

Usage::

    python bench/precheck.py [--repeat 9] [--calls 200000] [--requests 20000]

Before each request on a reused connection, ``Connection.request`` asks poll(2),
with a zero timeout, whether the idle socket has anything to read (the server's
FIN or RST, or bytes no request asked for); only then is it replaced, before the
request is written.  This script measures, in one gevent-patched process:

* micro: the statement as executed per request (``poller.poll(0)`` on an idle,
  connected loopback socket), next to the alternative urllib3's idea suggests
  (``recv(1, MSG_PEEK)`` on the non-blocking socket, raising BlockingIOError) and
  an empty call, in ns per call;
* in situ: ``Connection.request`` round trips against a keep-alive server in a
  child process, with the check as shipped and with the poll object replaced
  by a stub that finds nothing (so the difference is the syscall, not the call).
  Loopback round trips are noisy on a shared machine: the micro figure is the
  cost; the in-situ one shows what share of a request it is.

Variants are interleaved (A B C A B C ...; in situ A B B A ...) and medians reported.  127.0.0.1 only;
standard library, gevent and loadgen only; not used by the tests.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time

from gevent import monkey

SERVER = r"""
import socket, sys, threading
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        n = buf.count(b"\r\n\r\n")
        if n:
            buf = buf[buf.rindex(b"\r\n\r\n") + 4:]
            conn.sendall(OK * n)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


class _NothingPending:
    """Stands in for the poll object: finds nothing, at the cost of a Python call."""

    def poll(self, timeout: int) -> list:
        return []


def micro(calls: int, repeat: int) -> dict[str, float]:
    poll = monkey.get_original("select", "poll")
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    raw = client._sock    # gevent's underlying non-blocking socket
    poller = poll()
    poller.register(client.fileno(), 1)
    peek = socket.MSG_PEEK

    def by_poll() -> bool:
        return bool(poller.poll(0))

    def by_peek() -> bool:
        try:
            raw.recv(1, peek)
        except BlockingIOError:
            return False
        return True

    def empty() -> bool:
        return False

    variants = {"poll(0) [shipped]": by_poll, "recv(1, MSG_PEEK)": by_peek, "empty call": empty}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, fn in variants.items():
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - t) / calls * 1e9)
    for s in (client, peer, server):
        s.close()
    return {name: statistics.median(v) for name, v in samples.items()}


def in_situ(requests: int, repeat: int) -> dict[str, float]:
    import urllib3  # after patch_all(), as in a worker: its pool queue must be gevent's

    from loadgen.engine.client import Connection, build_request

    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        port = int(proc.stdout.readline())
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=2, block=False)
        data = build_request("GET", f"127.0.0.1:{port}", "/", [], b"")
        samples: dict[str, list[float]] = {"with the check": [], "check stubbed": []}
        conns = {name: Connection(pool, 10.0) for name in samples}
        for conn in conns.values():
            conn.open()
        conns["check stubbed"].poller = _NothingPending()
        order = list(conns.items())
        for _ in range(repeat):
            order.reverse()   # A B, B A, ...: neither always runs first
            for name, conn in order:
                t = time.perf_counter()
                for _ in range(requests):
                    conn.request(data, False)
                samples[name].append((time.perf_counter() - t) / requests * 1e6)
        assert all(c.reconnects == 0 for c in conns.values())
        return {name: statistics.median(v) for name, v in samples.items()}
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    monkey.patch_all()   # loadgen's client only ever runs patched (loadgen/engine/process.py)
    print(f"micro: median of {args.repeat} interleaved rounds of {args.calls:,} calls")
    for name, ns in micro(args.calls, args.repeat).items():
        print(f"  {name:<22} {ns:8.0f} ns/call")
    print(f"in situ: Connection.request, median of {args.repeat} interleaved rounds of "
          f"{args.requests:,} requests (one connection, loopback)")
    figures = in_situ(args.requests, args.repeat)
    for name, us in figures.items():
        print(f"  {name:<22} {us:8.2f} us/request")
    diff = figures["with the check"] - figures["check stubbed"]
    print(f"  difference             {diff * 1000:8.0f} ns/request (noisy: see the micro figure)")


if __name__ == "__main__":
    main()
