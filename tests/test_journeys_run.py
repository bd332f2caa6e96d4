"""User journeys end to end (issue 12 section 2): real runs, worker processes spawned, against
the built-in target's shop, whose answers depend on what the journey extracted.

The shop gives each logged-in user new item ids on every listing and accepts an order
(201) only for an id shown to *that* user and not ordered yet, so a journey whose
``extract`` or per-user token were wrong shows as refused orders on the server's side.
Every assertion compares loadgen's rows with what the server counted (``/__stats``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import TargetServer
from tests.helpers import REPO, loadgen

LOGIN = "shopper: POST /api/auth/login"
ITEMS = "shopper: GET /shop/items"
ORDER = "shopper: POST /shop/orders"

SHOPPER = """
[[users]]
name = "shopper"
data = {{ file = "{feeder}", mode = "per-user" }}
{extra}

[[users.on_start]]
method = "POST"
path = "/api/auth/login"
headers = {{ "Content-Type" = "application/json" }}
body = '{{"username": "{{{{ username }}}}", "password": "{{{{ password }}}}"}}'
extract = {{ token = "json:access_token" }}

[[users.steps]]
path = "/shop/items"
headers = {{ Authorization = "Bearer {{{{ token }}}}" }}
extract = {{ item = "{item}" }}

[[users.steps]]
method = "POST"
path = "/shop/orders"
headers = {{ Authorization = "Bearer {{{{ token }}}}", "Content-Type" = "application/json" }}
body = '{{"item": "{{{{ item }}}}"}}'
expect = {{ status = [201], body_contains = "order_id" }}
"""


def _feeder(tmp_path: Path, users: int = 20) -> Path:
    path = tmp_path / "shoppers.csv"
    path.write_text("username,password\n" + "".join(
        f"shopper{i},shopper{i}-pass\n" for i in range(1, users + 1)))
    return path


def _scenario(tmp_path: Path, target: TargetServer, top: str = "", extra: str = "",
              item: str = "json:items[0].id") -> Path:
    path = tmp_path / "journey.toml"
    path.write_text(f'url = "{target.url}"\n{top}\n'
                    + SHOPPER.format(feeder=_feeder(tmp_path), extra=extra, item=item))
    return path


def _rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["endpoint"]: row for row in doc["endpoints"]}


def _iterations(doc: dict[str, Any], kind: str = "shopper") -> dict[str, Any]:
    (journey,) = [j for j in doc["journeys"] if j["name"] == kind]
    return journey["iterations"]


def test_closed_journey_counts_equal_the_servers(target_server: TargetServer,
                                                 tmp_path: Path) -> None:
    """Each user logs in once with its own row of the feeder; exactly --iterations
    iterations, split over two workers; every order is one the server accepts."""
    scenario = _scenario(tmp_path, target_server)
    target_server.reset()
    run = loadgen("run", "--config", str(scenario), "--iterations", "40", "--workers", "2",
                  "--concurrency", "4", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    rows = _rows(run.doc)
    assert rows[LOGIN]["successes"] == rows[LOGIN]["requests"] == 4
    assert rows[ITEMS]["successes"] == rows[ITEMS]["requests"] == 40
    assert rows[ORDER]["successes"] == rows[ORDER]["requests"] == 40
    assert rows[ORDER]["checked"] == 40 and rows[ORDER]["checks_failed"] == {}
    assert run.doc["summary"]["requests"] == 84   # iterations are not requests
    it = _iterations(run.doc)
    assert (it["total"], it["successes"], it["failures"], it["cut"]) == (40, 40, 0, 0)
    stats = target_server.stats()
    assert stats["logins_by_user"] == {f"shopper{i}": 1 for i in range(1, 5)}
    assert stats["shop"]["listings"] == 40
    assert stats["orders"]["created"] == 40 and stats["orders"]["refused"] == 0
    assert stats["paths"]["/shop/orders"] == 40
    assert run.doc["config"]["iterations"] == 40
    assert "shopper" in run.stdout and "iteration" in run.stdout.lower()


def test_a_failed_extraction_fails_the_iteration_and_the_user_goes_on(
        target_server: TargetServer, tmp_path: Path) -> None:
    """An extraction that finds nothing fails its step (kind ``extract``) and the
    iteration there: the order is never sent, the next iteration starts."""
    scenario = _scenario(tmp_path, target_server, item="json:items[0].nope")
    target_server.reset()
    run = loadgen("run", "--config", str(scenario), "--iterations", "12", "--workers", "1",
                  "--concurrency", "3", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr   # no threshold: failures alone are not exit 1
    rows = _rows(run.doc)
    assert rows[ITEMS]["requests"] == 12 and rows[ITEMS]["failures_by_kind"] == {"extract": 12}
    assert ORDER not in rows or rows[ORDER]["requests"] == 0
    it = _iterations(run.doc)
    assert (it["total"], it["successes"], it["failures"]) == (12, 0, 12)
    assert it["failed_at"] == {ITEMS: 12}
    stats = target_server.stats()
    assert stats["shop"]["listings"] == 12 and stats["paths"].get("/shop/orders", 0) == 0
    assert stats["logins"]["issued"] == 3


def test_open_model_journey_one_iteration_per_arrival(target_server: TargetServer,
                                                      tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, target_server)
    target_server.reset()
    run = loadgen("run", "--config", str(scenario), "--rate", "40", "--iterations", "30",
                  "--workers", "2", "--max-connections", "8", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    rows = _rows(run.doc)
    it = _iterations(run.doc)
    assert (it["total"], it["successes"]) == (30, 30)
    assert rows[ITEMS]["successes"] == rows[ORDER]["successes"] == 30
    users = rows[LOGIN]["successes"]
    assert 2 <= users <= 8   # a pool: each worker's users logged in once, at most 8 in all
    stats = target_server.stats()
    assert stats["orders"]["created"] == 30 and stats["orders"]["refused"] == 0
    assert stats["logins"]["issued"] == users
    assert sorted(stats["logins_by_user"].values()) == [1] * users


def test_refresh_on_401_logs_in_again_and_retries(short_ttl_server: TargetServer,
                                                 tmp_path: Path) -> None:
    """Tokens live 1 s; think time makes a user's iterations outlive its token: each 401
    re-runs the login and retries the step once, both counted; no iteration fails."""
    scenario = _scenario(tmp_path, short_ttl_server, extra='think = "150ms"\n'
                         'refresh_on = [401]')
    short_ttl_server.reset()
    run = loadgen("run", "--config", str(scenario), "--duration", "3s", "--workers", "1",
                  "--concurrency", "2", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    rows = _rows(run.doc)
    stats = short_ttl_server.stats()
    expired = stats["unauthorized"]["expired"]
    assert expired >= 2   # 3 s with 1 s tokens: each user's token expired at least once
    refused = sum(rows[n]["failures_by_status"].get("401", 0) for n in (ITEMS, ORDER))
    assert refused == expired                        # each 401 counted where it happened
    logins = rows[LOGIN]["successes"]
    assert logins == stats["logins"]["issued"]
    # one login per user, one more per 401 (the run's end may cut a user between the two)
    assert 2 + expired - 2 <= logins <= 2 + expired
    assert rows[ITEMS]["requests"] == stats["paths"]["/shop/items"]
    assert _iterations(run.doc)["failures"] == 0
    assert stats["orders"]["refused"] == 0
    assert rows[ORDER]["successes"] == stats["orders"]["created"]


def test_feeder_passwords_never_reach_outputs(target_server: TargetServer,
                                              tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, target_server)
    image = tmp_path / "chart.png"
    run = loadgen("run", "--config", str(scenario), "--iterations", "6", "--workers", "1",
                  "--concurrency", "2", "--visualize", "--output-image", str(image),
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    saved = (tmp_path / "r.json").read_bytes()
    for blob in (run.stdout.encode(), run.stderr.encode(), saved, image.read_bytes()):
        assert b"-pass" not in blob and b"Bearer" not in blob
    report = loadgen("report", str(tmp_path / "r.json"))
    assert report.status == 0 and b"-pass" not in report.stdout.encode()


def test_the_shipped_journey_example_runs(target_server: TargetServer, tmp_path: Path) -> None:
    """configs/shop-journey.toml as the README shows it (its url replaced, fewer iterations)."""
    target_server.reset()
    run = loadgen("run", "--config", str(REPO / "configs" / "shop-journey.toml"),
                  "--url", target_server.url, "--iterations", "6", "--concurrency", "2",
                  "--workers", "1", save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    assert _iterations(run.doc)["successes"] == 6
    assert target_server.stats()["orders"]["created"] == 6
