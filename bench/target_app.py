"""What one request costs the built-in target's WSGI app, per route: a base revision vs now.

The target is the demo and benchmark server, so what its routes cost is overhead a run
would mistake for server latency. This calls the app in-process (no sockets, no gevent:
only the app's own work per request): the base revision's ``loadgen/target/app.py`` (read
with ``git show``), the same again as an A/A control (its ratio is the noise floor), and
the working tree's, rotating who goes first, ``--rounds`` times; it prints medians and the
median of the paired per-round ratios. Routes only the current app has are measured alone.

    python bench/target_app.py                      # base: 720d068, before the shop
    python bench/target_app.py --base 720d068 --rounds 15 --calls 20000
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loadgen.target import app as current

Environ = dict[str, Any]


def load_base(rev: str) -> ModuleType:
    """The target app module as it was at ``rev`` (its imports resolve to this tree)."""
    source = subprocess.run(["git", "show", f"{rev}:loadgen/target/app.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "base_app.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("base_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environ(method: str, path: str, body: bytes = b"", token: str | None = None) -> Environ:
    env: Environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
                    "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": io.BytesIO(body),
                    "CONTENT_LENGTH": str(len(body))}
    if token is not None:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return env


def start_response(status: str, headers: list[tuple[str, str]]) -> None:
    pass


def login(app: Any, user: str, password: str) -> str:
    body = f'{{"username": "{user}", "password": "{password}"}}'.encode()
    raw = b"".join(app(environ("POST", "/api/auth/login", body), start_response))
    return str(orjson.loads(raw)["access_token"])


def per_call_us(app: Any, make: Callable[[int], Environ], calls: int) -> float:
    """Microseconds per call; the environs are made before the clock starts."""
    envs = [make(i) for i in range(calls)]
    started = time.perf_counter()
    for env in envs:
        for _ in app(env, start_response):
            pass
    return (time.perf_counter() - started) / calls * 1e6


def scenarios(app: Any, shop: bool) -> dict[str, Callable[[int], Environ]]:
    admin = login(app, "admin", "admin123")
    found: dict[str, Callable[[int], Environ]] = {
        "GET /api/health": lambda i: environ("GET", "/api/health"),
        "GET /api/analysis/transcript (cached token)":
            lambda i: environ("GET", "/api/analysis/transcript", token=admin),
        "GET /status/404 (prefix route)": lambda i: environ("GET", "/status/404"),
        "GET /nope (not found)": lambda i: environ("GET", "/nope"),
    }
    if shop:
        user = login(app, "shopper1", "shopper1-pass")
        found["GET /shop/items"] = lambda i: environ("GET", "/shop/items", token=user)
        found["POST /shop/orders (refused: not shown)"] = lambda i: environ(
            "POST", "/shop/orders", b'{"item": "nope"}', token=user)
        found["GET /api/items/<id>"] = lambda i: environ("GET", f"/api/items/row-{i % 5000}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="720d068", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    # A second base app is the control: base against itself (A/A) shows the noise floor.
    # The shop's routes get an app of their own: they grow its path and id tables, which
    # must not slow the routes compared with the base.
    apps = {"base": load_base(args.base).TargetApp(sleep=time.sleep),
            "control": load_base(args.base).TargetApp(sleep=time.sleep),
            "now": current.TargetApp(sleep=time.sleep)}
    makers = {label: scenarios(app, shop=False) for label, app in apps.items()}
    new = makers["now"]
    shop_app = current.TargetApp(sleep=time.sleep)
    shop = {name: make for name, make in scenarios(shop_app, shop=True).items()
            if name not in new}
    figures: dict[tuple[str, str], list[float]] = {}
    labels = list(apps)
    for round_ in range(args.rounds):
        # Rotate who goes first, so no app always runs in the same slot.
        order = labels[round_ % 3:] + labels[:round_ % 3]
        for name in new:
            for label in order:
                figures.setdefault((name, label), []).append(
                    per_call_us(apps[label], makers[label][name], args.calls))
        for name, make in shop.items():
            figures.setdefault((name, "now"), []).append(per_call_us(shop_app, make, args.calls))
    print(f"target app, in-process, us per call: medians of {args.rounds} interleaved rounds "
          f"of {args.calls} calls; base = {args.base}")
    def paired(name: str, label: str) -> float:
        """Median of each round's label/base: drift of a shared machine cancels."""
        return statistics.median(x / y for x, y in zip(figures[(name, label)],
                                                       figures[(name, "base")], strict=True))

    print("  route                                          base     now  now/base  A/A")
    for name in [*new, *shop]:
        now = statistics.median(figures[(name, "now")])
        if (name, "base") in figures:
            was = statistics.median(figures[(name, "base")])
            print(f"  {name:45s} {was:6.2f}  {now:6.2f}  {paired(name, 'now'):8.3f}  "
                  f"{paired(name, 'control'):5.3f}")
        else:
            print(f"  {name:45s}         {now:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
