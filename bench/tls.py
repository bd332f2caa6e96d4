"""New TLS connections per second: loadgen next to ``openssl s_time -new``, same nginx.

Usage::

    python bench/tls.py [--duration 5] [--repeat 3] [--concurrency 1]

A private nginx (one worker, TLS 1.3, certificate from a private CA made here
with tests/tlscerts.py) closes every connection after one response
(``keepalive_timeout 0``), so each of loadgen's requests is a new TCP connection
and a TLS handshake.  ``openssl s_time -new`` makes full handshakes back to back
on one connection at a time (no request): the ceiling of what a client on this
machine can do.  Rounds are interleaved (s_time, loadgen, s_time, loadgen ...)
and medians are printed; loadgen's figure is its requests/s, which here is new
connections/s.  loadgen runs twice per round: against that nginx, and against
a second server block of it that refuses resumption (``ssl_session_tickets off``,
no session cache), so its handshakes are full ones like s_time's.  nginx logs ``$ssl_session_reused`` for every request, so the
output says how many of loadgen's handshakes resumed a session.

Goal (issue 10): loadgen >= 50% of s_time -new.  Before loadgen kept one
SSLContext per worker, the issue measured 26 req/s against s_time's 390.

nginx on CPU 1 and the clients on CPU 0 (taskset) when both are ours.  All
load goes to 127.0.0.1; nginx is stopped by its pid.  Not used by the tests.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import cost  # bench/ is not a package: cost.py is found as a sibling
from tlscerts import make_pki

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format tls '$ssl_protocol $ssl_session_reused';
    access_log {tmp}/access.log tls;
    keepalive_timeout 0;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 'ok'; }}
    }}
    server {{   # the same, refusing resumption: every handshake is a full one, as s_time's
        listen 127.0.0.1:{full_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / {{ return 200 'ok'; }}
    }}
}}
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=5, help="seconds per run [5]")
    p.add_argument("--repeat", type=int, default=3, help="interleaved rounds [3]")
    p.add_argument("--concurrency", type=int, default=1,
                   help="loadgen connections (s_time has one) [1]")
    return p.parse_args(argv)


def s_time(port: int, duration: int, pin: bool) -> float:
    """Full handshakes per second, as ``openssl s_time -new`` counts them (real time)."""
    argv = cost.pinned(["openssl", "s_time", "-new", "-connect", f"127.0.0.1:{port}",
                        "-time", str(duration)], cost.CLIENT_CPU, pin)
    out = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=duration + 60,
                         stdin=subprocess.DEVNULL).stdout
    m = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if not m:
        raise RuntimeError(f"unexpected s_time output: {out[-300:]!r}")
    return int(m.group(1)) / max(1, int(m.group(2)))


def loadgen(port: int, ca: Path, args: argparse.Namespace, pin: bool, save: Path) -> float:
    argv = cost.pinned([sys.executable, "-m", "loadgen", "run", "--url",
                        f"https://127.0.0.1:{port}", "--endpoint", "/", "--cacert", str(ca),
                        "--duration", f"{args.duration}s", "--workers", "1",
                        "--concurrency", str(args.concurrency), "--quiet", "--save", str(save)],
                       cost.CLIENT_CPU, pin)
    proc = subprocess.run(argv, check=False, capture_output=True, text=True,
                          timeout=args.duration + 60,
                          cwd=cost.REPO, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited {proc.returncode}: {proc.stderr[-300:]}")
    summary = json.loads(save.read_text())["summary"]
    if summary["failures"]:
        raise RuntimeError(f"loadgen had failures: {summary}")
    return float(summary["rps"])


def resumed(log: Path, start: int) -> tuple[int, int]:
    """(resumed, total) handshakes nginx logged since byte ``start`` of its access log."""
    lines = log.read_bytes()[start:].decode().splitlines()
    return sum(line.endswith(" r") for line in lines), len(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
    if not Path(nginx).exists() or not openssl:
        print("tls.py: needs nginx and the openssl command", file=sys.stderr)
        return 2
    pin = cost.pinning_available()
    rounds: dict[str, list[float]] = {"s_time": [], "loadgen": [], "full": []}
    reuse = [0, 0]
    refused = [0, 0]
    with tempfile.TemporaryDirectory(prefix="loadgen-tls-") as name:
        tmp = Path(name)
        pki = make_pki(tmp / "pki")
        port, full_port = cost.free_port(), cost.free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, full_port=full_port,
                                          cert=pki.server_cert, key=pki.server_key))
        server = subprocess.Popen(cost.pinned([nginx, "-p", str(tmp), "-c", str(conf)],
                                              cost.SERVER_CPU, pin),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            cost.wait_listening(port, server, cost.SERVER_START_TIMEOUT_S)
            log = tmp / "access.log"
            for i in range(args.repeat):
                rounds["s_time"].append(s_time(port, args.duration, pin))
                start = log.stat().st_size if log.exists() else 0
                rounds["loadgen"].append(loadgen(port, pki.ca, args, pin, tmp / f"r{i}.json"))
                r, n = resumed(log, start)
                reuse[0] += r
                reuse[1] += n
                start = log.stat().st_size
                rounds["full"].append(loadgen(full_port, pki.ca, args, pin, tmp / f"f{i}.json"))
                r, n = resumed(log, start)
                refused[0] += r
                refused[1] += n
                print(f"round {i + 1}: s_time -new {rounds['s_time'][-1]:.0f}/s, "
                      f"loadgen {rounds['loadgen'][-1]:.0f}/s, "
                      f"loadgen full handshakes {rounds['full'][-1]:.0f}/s", file=sys.stderr)
        finally:
            cost.stop_process(server)   # by its pid (Popen), never by name
    st, lg, full = (statistics.median(rounds[k]) for k in ("s_time", "loadgen", "full"))
    print("## new TLS connections per second (nginx keepalive_timeout 0)")
    print(*cost.machine_lines(pin), sep="\n")
    print(f"load:    {args.duration}s runs, {args.repeat} interleaved rounds, medians; "
          f"loadgen --workers 1 --concurrency {args.concurrency}")
    print(f"openssl s_time -new   {st:8.0f} conn/s   (full handshakes, no request)")
    print(f"loadgen               {lg:8.0f} conn/s   (handshake + GET + response each)")
    print(f"  ratio               {lg / st:8.0%}   (goal >= 50%); resumed: {reuse[0]} of "
          f"{reuse[1]} handshakes ({reuse[0] / max(1, reuse[1]):.0%}, nginx's log)")
    print(f"loadgen, no resumption{full:8.0f} conn/s   (server refuses resumption)")
    print(f"  ratio               {full / st:8.0%}   resumed: {refused[0]} of {refused[1]}")
    print("before (issue 10):     loadgen 26 req/s vs s_time -new 390 (7%)")
    return 0 if lg >= 0.5 * st else 1


if __name__ == "__main__":
    sys.exit(main())
