"""The built-in target's shop API, token lifetime and new ``/__stats`` counters (issue 12, 6).

Unit tests first (the shop's state, tokens and counters in this process, no gevent), then
the real server process over http.client on 127.0.0.1: the order flow, 401s by reason,
ids recorded, peak connections, tokens that expire (``--token-ttl 1``, waited for by
polling the server past the token's ``exp`` claim), and the option's bad input.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import REPO_ROOT, TargetServer, start_target_server, stop_target_server
from helpers import one_line_error, poll_until, run_in_process

from loadgen.target.app import SHOPPERS, lookup_user
from loadgen.target.counters import Counters
from loadgen.target.shop import ITEMS_PER_LISTING, Shop
from loadgen.target.tokens import BAD, EXPIRED, MISSING, Tokens

HOST = "127.0.0.1"


# -- units: the shop's memory, tokens, users, counters ----------------------------------------


def no_auth(*_: Any) -> Any:
    raise AssertionError("the routes are not called in unit tests")


def test_shop_accepts_only_items_shown_to_that_user_and_forgets_the_oldest() -> None:
    counters = Counters()
    shop = Shop(no_auth, counters, shown_per_user=4)
    first = [item["id"] for item in shop.list_items("alice")]
    second = [item["id"] for item in shop.list_items("alice")]
    bobs = [item["id"] for item in shop.list_items("bob")]
    assert len(set(first + second + bobs)) == 3 * ITEMS_PER_LISTING   # new ids every call
    # alice remembers her last 4 of 6: the first two are forgotten.
    assert [shop.order("alice", i)[0] for i in first[:2]] == [404, 404]
    code, order = shop.order("alice", first[2])
    assert code == 201 and order["item"] == first[2] and order["order_id"]
    assert shop.order("alice", first[2])[0] == 409        # ordered once only
    assert shop.order("alice", bobs[0])[0] == 404         # shown to bob, not alice
    assert shop.order("carol", second[0])[0] == 404       # a user who never listed
    assert shop.order("bob", bobs[0])[0] == 201
    snapshot = counters.snapshot()
    assert snapshot["shop"] == {"listings": 3, "items_shown": 3 * ITEMS_PER_LISTING}
    assert snapshot["orders"] == {"created": 2, "refused": 5, "not_shown": 4,
                                  "already_ordered": 1}


def test_tokens_say_why_they_are_refused() -> None:
    secret = "k" * 32
    tokens = Tokens(secret, ttl_s=5)
    before = time.time()
    token = tokens.issue("user", "user")
    after = time.time()
    claims = tokens.verify(token)
    assert isinstance(claims, dict) and claims["sub"] == "user" and claims["role"] == "user"
    assert before + 5 <= claims["exp"] < after + 6       # rounded up: never shorter than asked
    past = int(time.time()) - 10
    expired = jwt.encode({"sub": "user", "role": "user", "exp": past}, secret, algorithm="HS256")
    forged = jwt.encode({"sub": "user", "role": "user", "exp": past}, "x" * 32, algorithm="HS256")
    assert tokens.verify(expired) == EXPIRED
    assert tokens.verify(forged) == BAD                   # the signature is checked first
    assert tokens.verify("garbage") == BAD
    assert tokens.check("") == MISSING
    assert tokens.check("Basic dXNlcjpwdw==") == MISSING
    assert tokens.check(f"bearer {token}") == claims


def test_numbered_shoppers_can_log_in() -> None:
    assert lookup_user("shopper1") == ("shopper1-pass", "user")
    assert lookup_user(f"shopper{SHOPPERS}") == (f"shopper{SHOPPERS}-pass", "user")
    for name in ("shopper0", f"shopper{SHOPPERS + 1}", "shopper07", "shopper", "shopperx",
                 "shopper\u0661"):
        assert lookup_user(name) is None, name
    assert lookup_user("admin") == ("admin123", "admin")


def test_ids_are_counted_within_a_bound() -> None:
    counters = Counters(max_ids=2)
    for item_id in ("a", "b", "a", "c", "c"):
        counters.saw_id(item_id)
    snapshot = counters.snapshot()
    assert snapshot["ids_seen"] == {"a": 2, "b": 1} and snapshot["ids_untracked"] == 2
    counters.reset()
    assert counters.snapshot()["ids_seen"] == {}


# -- the real server --------------------------------------------------------------------------


class Client:
    """One kept-alive connection to the target, answers decoded from JSON."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=10)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if body is not None:
            raw = json.dumps(body).encode()
        self.conn.request(method, path, body=raw, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None

    def login(self, username: str, password: str) -> str:
        status, doc = self.call("POST", "/api/auth/login",
                                {"username": username, "password": password})
        assert status == 200, doc
        return str(doc["access_token"])

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def client(target_server: TargetServer) -> Iterator[Client]:
    target_server.reset()
    c = Client(target_server.port)
    try:
        yield c
    finally:
        c.close()


def test_order_flow(target_server: TargetServer, client: Client) -> None:
    alice = client.login("shopper1", "shopper1-pass")
    bob = client.login("shopper2", "shopper2-pass")
    assert client.call("POST", "/api/auth/login", {"username": "shopper1", "password": "x"})[0] \
        == 401
    status, listing = client.call("GET", "/shop/items", token=alice)
    assert status == 200 and len(listing["items"]) == ITEMS_PER_LISTING
    assert all(set(item) == {"id", "name", "price"} for item in listing["items"])
    again = client.call("GET", "/shop/items", token=alice)[1]["items"]
    bobs = client.call("GET", "/shop/items", token=bob)[1]["items"]
    ids = [item["id"] for item in listing["items"] + again + bobs]
    assert len(set(ids)) == len(ids)

    item = listing["items"][0]["id"]
    status, order = client.call("POST", "/shop/orders", {"item": item}, token=alice)
    assert status == 201 and order["item"] == item and order["order_id"]
    assert client.call("POST", "/shop/orders", {"item": item}, token=alice)[0] == 409
    assert client.call("POST", "/shop/orders", {"item": bobs[0]["id"]}, token=alice)[0] == 404
    assert client.call("POST", "/shop/orders", {"item": "{{ item }}"}, token=alice)[0] == 404
    assert client.call("POST", "/shop/orders", {"item": bobs[0]["id"]}, token=bob)[0] == 201
    for bad in (b"not json", b"", b"[1]", b"{}", b'{"item": 5}'):
        assert client.call("POST", "/shop/orders", raw=bad, token=alice)[0] == 400, bad
    assert client.call("POST", "/shop/orders", raw=b"x" * (65 * 1024), token=alice)[0] == 413

    # 401s, by reason; the body is not even looked at without a valid token.
    assert client.call("GET", "/shop/items") == (401, {"detail": "Not authenticated"})
    assert client.call("POST", "/shop/orders", {"item": item}, token="")[0] == 401
    assert client.call("POST", "/shop/orders", raw=b"bad", token="garbage") \
        == (401, {"detail": "Invalid token"})
    assert client.call("GET", "/api/analysis/transcript", token=alice)[0] == 403
    assert client.call("GET", "/api/analysis/transcript", token="a.b.c")[0] == 401

    stats = target_server.stats()
    assert stats["logins"] == {"issued": 2, "refused": 1}
    assert stats["logins_by_user"] == {"shopper1": 1, "shopper2": 1}
    assert stats["shop"] == {"listings": 3, "items_shown": 3 * ITEMS_PER_LISTING}
    assert stats["orders"] == {"created": 2, "refused": 3, "not_shown": 2, "already_ordered": 1}
    assert stats["unauthorized"] == {"missing": 2, "bad": 2, "expired": 0}
    assert stats["paths"]["/shop/orders"] == 13 and stats["paths"]["/shop/items"] == 4


def test_shop_methods(client: Client) -> None:
    assert client.call("POST", "/shop/items", raw=b"{}")[0] == 405
    assert client.call("GET", "/shop/orders")[0] == 405
    assert client.call("PUT", "/api/items/a", raw=b"")[0] == 405


def test_item_ids_are_recorded(target_server: TargetServer, client: Client) -> None:
    for item_id in ("a", "b", "b", "row-7", "caf%C3%A9", "%FF"):
        assert client.call("GET", f"/api/items/{item_id}")[0] == 200
    assert client.call("GET", "/api/items/b") == (200, {"id": "b"})
    assert client.call("GET", "/api/items/")[0] == 400
    assert client.call("GET", "/api/items/" + "x" * 257)[0] == 400
    stats = target_server.stats()
    assert stats["ids_seen"] == {"a": 1, "b": 3, "row-7": 1, "caf\u00e9": 1,
                                  "\u00ff": 1}
    assert stats["ids_untracked"] == 0


def test_peak_connections(target_server: TargetServer, client: Client) -> None:
    """Seven extra connections at once show as a peak of eight (with the client's own).

    Everything is asked over ``client``'s one kept-alive connection, so no other
    connection comes or goes while the test counts."""
    def connections() -> dict[str, int]:
        status, stats = client.call("GET", "/__stats")
        assert status == 200
        return dict(stats["connections"])

    # Connections of earlier tests may still be closing on the server's side.
    assert poll_until(lambda: connections()["open"] == 1, 10)
    assert client.call("POST", "/__reset")[0] == 200
    assert connections() == {"open": 1, "peak": 1, "accepted": 0}
    extra = [http.client.HTTPConnection(HOST, target_server.port, timeout=10) for _ in range(7)]
    try:
        for conn in extra:
            conn.connect()
        assert poll_until(lambda: connections()["open"] == 8, 10)
    finally:
        for conn in extra:
            conn.close()
    assert poll_until(lambda: connections()["open"] == 1, 10)
    assert connections() == {"open": 1, "peak": 8, "accepted": 7}


def test_tokens_expire_after_token_ttl(short_ttl_server: TargetServer) -> None:
    client = Client(short_ttl_server.port)
    try:
        before = time.time()
        token = client.login("user", "user123")
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        assert before + 1 <= exp <= time.time() + 2        # lives 1 to 2 s
        answers: list[int] = []

        def refused() -> bool:
            answers.append(client.call("GET", "/shop/items", token=token)[0])
            return answers[-1] == 401

        assert poll_until(refused, 10, every_s=0.05)
        assert time.time() >= exp                    # refused only once expired
        assert answers[0] == 200 and set(answers[:-1]) == {200}
        # The first refusal came from the token cache; this one from PyJWT's exp check.
        assert client.call("GET", "/api/analysis/transcript", token=token) \
            == (401, {"detail": "Token expired"})
        stats = short_ttl_server.stats()
        assert stats["unauthorized"] == {"missing": 0, "bad": 0, "expired": 2}
        assert stats["shop"]["listings"] == len(answers) - 1
        assert stats["paths"]["/shop/items"] == len(answers)
        # A new login works again.
        assert client.call("GET", "/shop/items", token=client.login("user", "user123"))[0] == 200
    finally:
        client.close()
    assert "Traceback" not in short_ttl_server.log_path.read_text()


def test_serve_command_takes_token_ttl(tmp_path: Path) -> None:
    server = start_target_server(tmp_path / "server.log", module="loadgen",
                                 args=("serve", "--token-ttl", "30"))
    client = Client(server.port)
    try:
        before = time.time()
        exp = jwt.decode(client.login("admin", "admin123"),
                         options={"verify_signature": False})["exp"]
        assert before + 30 <= exp <= time.time() + 31
    finally:
        client.close()
        stop_target_server(server)


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_token_ttl_bad_input(ttl: str) -> None:
    line = one_line_error(run_in_process("serve", "--token-ttl", ttl))
    assert "--token-ttl" in line
    argv = [sys.executable, "-m", "loadgen.target.server", "--port", "0", "--token-ttl", ttl]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30,
                          cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "--token-ttl" in proc.stderr and not proc.stdout


def test_server_logged_no_errors(target_server: TargetServer) -> None:
    """Runs last in this module: nothing above made the app raise."""
    assert "Traceback" not in target_server.log_path.read_text()
