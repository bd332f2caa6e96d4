"""User journeys built by hand, as the ``[[users]]`` parser will build them (config only).

Shared by tests/journeyscripts.py (in the worker harness) and tests/test_journey_worker.py
(the end-to-end run through the coordinator): standard library and ``loadgen.config`` only,
so importing it never brings gevent into the test process.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loadgen.commands.inputs import build_config
from loadgen.config.checks import parse_rules
from loadgen.config.feeder import PER_USER, from_rows
from loadgen.config.journey import Journeys, UserKind
from loadgen.config.model import DEFAULT_EXPECT_STATUS, Endpoint, RunConfig
from loadgen.config.template import RequestTemplates, parse, static


def step(kind: str, method: str, path: str, *, headers: tuple[tuple[str, str], ...] = (),
         body: str | None = None, rules: dict[str, Any] | None = None,
         columns: tuple[str, ...] = (), extracted: tuple[str, ...] = ()) -> Endpoint:
    """One step row as the ``[[users]]`` parser makes it: label ``"<kind>: METHOD path"``,
    templates parsed with the kind's feeder columns and the names extracted before it,
    rules parsed, ``expect.status`` folded into the success set."""
    where = f"{kind} {method} {path}"
    parsed_rules = parse_rules(rules, where) if rules else None
    templates = None
    if "{{" in path or any("{{" in v for _, v in headers) or (body and "{{" in body):
        templates = RequestTemplates(
            parse(path, where, columns, extracted) if "{{" in path else static(path),
            tuple((v, parse(v, where, columns, extracted)) for _, v in headers if "{{" in v),
            parse(body, where, columns, extracted) if body and "{{" in body else None)
    ok = DEFAULT_EXPECT_STATUS
    if parsed_rules is not None and parsed_rules.expect.status is not None:
        ok = parsed_rules.expect.status
    return Endpoint(method, path, (body or "").encode(), headers, label=f"{kind}: {method} {path}",
                    template_body=body is not None, templates=templates, rules=parsed_rules,
                    expect_status=ok)


def journey_config(url: str, options: dict[str, Any], base: dict[str, Any],
                   endpoints: list[Endpoint], kinds: list[UserKind]) -> RunConfig:
    """The run's options (``iterations`` taken out) through ``build_config``, then the
    journey laid over them."""
    options = dict(options)
    iterations = options.pop("iterations", None)
    config = build_config({**base, "url": url, **options})
    return replace(config, endpoints=tuple(endpoints), requests=None,
                   journeys=Journeys(tuple(kinds), iterations))


USERS = from_rows("users.csv", ("username", "password"),
                  [(f"u{i}", f"secret{i}") for i in range(5)], mode=PER_USER)
AUTH = (("Authorization", "Bearer {{ token }}"),)
JSON = (("Content-Type", "application/json"),)


def shop_journey(url: str, options: dict[str, Any], base: dict[str, Any], *,
                 think: tuple[float, float] = (0.0, 0.0), refresh: bool = False,
                 on_start: bool = True) -> RunConfig:
    """login (per-user feeder) -> items (extract an id) -> order that id (in the path and
    the body; 201 expected)."""
    cols = USERS.columns
    login = step("shopper", "POST", "/login", headers=JSON,
                 body='{"username": "{{ username }}", "password": "{{ password }}"}',
                 rules={"extract": {"token": "json:token"}}, columns=cols)
    before = ("token",) if on_start else ()
    items = step("shopper", "GET", "/items", headers=AUTH if on_start else (),
                 rules={"extract": {"item": "json:items[0].id"}}, columns=cols, extracted=before)
    order = step("shopper", "POST", "/orders/{{ item }}",
                 headers=(AUTH if on_start else ()) + JSON, body='{"item": "{{ item }}"}',
                 rules={"expect": {"status": [201], "body_contains": "order_id"}},
                 columns=cols, extracted=(*before, "item"))
    endpoints = [login, items, order] if on_start else [items, order]
    first = 1 if on_start else 0
    kind = UserKind("shopper", 1.0, think, on_start=(0,) if on_start else (),
                    steps=(first, first + 1), refresh_on=frozenset({401}) if refresh else
                    frozenset(), feeder=USERS)
    return journey_config(url, options, base, endpoints, [kind])


def two_kinds(url: str, options: dict[str, Any], base: dict[str, Any]) -> RunConfig:
    """Shoppers (login, items, order) and browsers (one GET, no on_start), weights 1:1."""
    config = shop_journey(url, options, base)
    browse = step("browser", "GET", "/browse/{{ seq }}")
    kinds = (*config.journeys.kinds, UserKind("browser", 1.0, steps=(3,)))
    return replace(config, endpoints=(*config.endpoints, browse),
                   journeys=Journeys(kinds, config.journeys.iterations))


