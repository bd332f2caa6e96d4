"""Response rules (issue 12, sections 2 and 3), pure: ``extract`` / ``expect`` / ``max_body``
tables parsed at config time (``loadgen.config.checks``: bad input is one exact line),
run on synthetic responses as a worker would hand them over (``loadgen.engine.checks``),
pickled as the plan is, and one virtual user's cookie jar (``loadgen.engine.cookies``)."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from typing import Any

import httptools
import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.config.checks import (
    DEFAULT_MAX_BODY,
    ConfigError,
    Expectations,
    Extraction,
    ResponseRules,
    parse_expect,
    parse_extract,
    parse_max_body,
    parse_rules,
)
from loadgen.config.jsonpath import FieldPath, compile_jmespath
from loadgen.engine.checks import (
    ExtractionFailed,
    Response,
    evaluate,
    extract,
    failed_check,
    same_json,
)
from loadgen.engine.cookies import CookieJar, default_path

WHERE = "[[users.steps]] #2 of shop.toml"
LABEL = f"'extract' in {WHERE}"
EXPECT = f"'expect' in {WHERE}"

STEP = {
    "extract": {"token": "json:access_token", "item": "json:items[0].id",
                "sid": "header:X-Session", "csrf": "regex:csrf=(\\w+)"},
    "expect": {"status": [201], "body_contains": "order_id",
               "json": {"items[0].id": "abc"}},
}
BODY = json.dumps({"access_token": "t0k3n", "order_id": 7, "items": [{"id": "abc"}],
                   "page": "?csrf=c5rf&x=1"}).encode()
HEADERS = [(b"Content-Type", b"application/json"), (b"x-session", b"S-1")]


def rules(**overrides: Any) -> ResponseRules:
    return parse_rules({**STEP, **overrides}, WHERE)


def response(body: bytes | None = BODY, status: int = 201,
             headers: list[tuple[bytes, bytes]] | None = None) -> Response:
    return Response(status, HEADERS if headers is None else headers, body, DEFAULT_MAX_BODY)


def config_error(call: Any, *args: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- parsing: what the rules hold ---------------------------------------------------------


def test_a_step_table_becomes_typed_rules() -> None:
    r = rules()
    assert [(e.name, e.kind, e.expression) for e in r.extract] == [
        ("token", "json", "access_token"), ("item", "json", "items[0].id"),
        ("sid", "header", "X-Session"), ("csrf", "regex", "csrf=(\\w+)")]
    assert r.expect.status == frozenset({201})
    assert r.expect.body_contains == ("order_id",)
    assert [(j.expression, j.expected) for j in r.expect.json] == [("items[0].id", "abc")]
    assert r.max_body == DEFAULT_MAX_BODY == 1 << 20
    assert r.needs_body and r.needs_headers and r


def test_what_the_worker_must_keep() -> None:
    """The body only for json/regex extractions and body checks; headers only for header:."""
    assert not ResponseRules() and not ResponseRules().needs_body
    assert not ResponseRules().needs_headers
    only_header = parse_rules({"extract": {"sid": "header:X-Session"}}, WHERE)
    assert only_header.needs_headers and not only_header.needs_body
    only_status = parse_rules({"expect": {"status": "200-299"}}, WHERE)
    assert only_status and not only_status.needs_body and not only_status.needs_headers
    assert parse_rules({"extract": {"x": "regex:(a)"}}, WHERE).needs_body
    assert parse_rules({"expect": {"json": {"a": 1}}}, WHERE).needs_body
    assert not parse_rules({"expect": {"status": 200}}, WHERE).needs_body


def test_status_takes_what_expect_status_takes() -> None:
    """The --expect-status parser, reused: statuses, ranges, classes, mixed arrays."""
    assert parse_expect({"status": 201}, EXPECT).status == frozenset({201})
    assert parse_expect({"status": "200-202"}, EXPECT).status == frozenset({200, 201, 202})
    assert parse_expect({"status": ["2xx", 304]}, EXPECT).status == \
        frozenset(range(200, 300)) | {304}


def test_max_body_sizes() -> None:
    assert parse_max_body(65536, "m") == 65536
    assert parse_max_body("512KiB", "m") == 512 << 10
    assert parse_max_body("2MiB", "m") == 2 << 20
    assert parse_max_body("1MB", "m") == 1_000_000
    assert parse_rules({"max_body": "64KiB", "expect": {"body_contains": "x"}},
                       WHERE).max_body == 64 << 10


@pytest.mark.parametrize("table, message", [
    (5, "must be a table like { token = \"json:access_token\" }, got the integer 5"),
    ({}, "is empty"),
    ({"x": "json:items["},
     "x = 'json:items[': not a valid JMESPath expression (incomplete expression at character 7)"),
    ({"x": 'json:"x'},
     "x = 'json:\"x': not a valid JMESPath expression (Unclosed \" delimiter at character 1)"),
    ({"x": "json:lenght(items)"},
     "x = 'json:lenght(items)': not a valid JMESPath expression (unknown function lenght())"),
    ({"x": "json:  "}, "x = 'json:  ' has nothing after 'json:'"),
    ({"x": "xpath://a"}, "x = 'xpath://a' must start with json:, header: or regex:"),
    ({"x": "access_token"}, "x = 'access_token' must start with json:, header: or regex:"),
    ({"x": "header:X Session"}, "x = 'header:X Session': 'X Session' is not a valid header name"),
    ({"x": "regex:id=\\w+"},
     ("x = 'regex:id=\\\\w+': has no capture group; put the value in parentheses, "
     "as in 'regex:id=(\\w+)'")),
    ({"x": "regex:(a)=(b)"},
     ("x = 'regex:(a)=(b)': has 2 capture groups; it needs exactly one (the value): "
     "make the others non-capturing, (?:...)")),
    ({"x": "regex:(a"},
     ("x = 'regex:(a': not a valid regular expression "
     "(missing ), unterminated subpattern at character 1)")),
    ({"x": 3}, "x must be a string like \"json:access_token\", got the integer 3"),
    ({"seq": "json:a"}, ("'seq' is a value loadgen provides (randint, seq, user, uuid); "
                        "choose another name")),
    ({"my-token": "json:a"},
     "'my-token' cannot be a template name (letters, digits and _, not starting with a digit)"),
])
def test_bad_extract_tables_are_one_exact_line(table: Any, message: str) -> None:
    sep = " " if message.startswith(("must", "is ")) else ": "
    assert config_error(parse_extract, table, LABEL) == f"{LABEL}{sep}{message}"


@pytest.mark.parametrize("table, message", [
    ([201], "must be a table like { status = [201] }, got an array"),
    ({}, "is empty"),
    ({"statuses": 201}, (": unknown key 'statuses' (did you mean 'status'?); "
                        "known: status, body_contains, json")),
    ({"status": []}, ": 'status' is empty"),
    ({"status": 99}, ": 'status': '99' is not a status list (examples: 200-399, 200,201,304, 2xx)"),
    ({"status": 600}, ": 'status': 600 is not an HTTP status (100-599) in '600'"),
    ({"status": True}, (": 'status' must be a status, a status list like \"200-299\", "
                       "or an array of them, got true (a boolean)")),
    ({"body_contains": ""}, ": 'body_contains': an empty string is in every body"),
    ({"body_contains": ["a", 1]},
     ": 'body_contains' must be a string or an array of strings, got the integer 1"),
    ({"json": {"a[": 1}},
     ": 'json': 'a[' is not a valid JMESPath expression (incomplete expression at character 3)"),
    ({"json": {"a": float("nan")}}, (": 'json': the value for 'a' must be a JSON value "
                                    "(string, number, boolean, array, table), got the float nan")),
    ({"json": "a == 1"},
     ": 'json' must be a table like { \"items[0].id\" = \"abc\" }, got the string 'a == 1'"),
])
def test_bad_expect_tables_are_one_exact_line(table: Any, message: str) -> None:
    sep = " " if message.startswith(("must", "is ")) else ""
    assert config_error(parse_expect, table, EXPECT) == f"{EXPECT}{sep}{message}"


@pytest.mark.parametrize("value, message", [
    ("lots", ": 'lots' is not a size (examples: 65536, 512KiB, 1MiB)"),
    (0, " must be at least 1 byte, got 0"),
    ("65MiB", ": '65MiB' is more than 64 MiB (each virtual user may hold a body this large)"),
    (1.5, " must be a size like \"1MiB\" or a number of bytes, got the float 1.5"),
])
def test_bad_max_body_is_one_exact_line(value: Any, message: str) -> None:
    label = f"'max_body' in {WHERE}"
    assert config_error(parse_max_body, value, label) == f"{label}{message}"


def test_parse_rules_names_each_key_in_its_table() -> None:
    assert config_error(parse_rules, {"extract": {"a": "json:["}}, WHERE).startswith(
        f"'extract' in {WHERE}: a = 'json:['")
    assert config_error(parse_rules, {"expect": {"status": "abc"}}, WHERE).startswith(
        f"'expect' in {WHERE}: 'status'")
    assert config_error(parse_rules, {"max_body": -1}, WHERE).startswith(
        f"'max_body' in {WHERE}")


# -- pickling: the rules travel in the plan -----------------------------------------------


def test_the_rules_module_imports_no_sockets() -> None:
    """Workers unpickle the plan before gevent patches: its modules may not import socket."""
    code = ("import sys, pickle, loadgen.config.checks as c; "
            "pickle.loads(pickle.dumps(c.parse_rules({'extract': {'a': 'json:a'}}, 'w'))); "
            "print(sorted(m for m in ('socket', 'ssl', 'gevent', 'urllib3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_empty_rules_pickle_too() -> None:
    assert pickle.loads(pickle.dumps(ResponseRules())) == ResponseRules()
    assert not pickle.loads(pickle.dumps(ResponseRules()))


def test_rules_pickle_as_text_and_come_back_equal_and_working() -> None:
    r = rules(max_body="64KiB")
    data = pickle.dumps(r)
    assert b"ParsedResult" not in data and b"_sre" not in data   # source text only
    back = pickle.loads(data)
    assert back == r and hash(back) == hash(r)
    assert back.extract[0].compiled.search({"access_token": "x"}) == "x"
    assert back.extract[3].compiled.pattern == r.extract[3].expression
    assert back.expect.needles == (b"order_id",)
    assert evaluate(back, 201, HEADERS, BODY) == evaluate(r, 201, HEADERS, BODY)


def test_equal_specs_compare_equal_whatever_was_compiled() -> None:
    assert Extraction("a", "json", "x.y") == Extraction("a", "json", "x.y")
    assert Extraction("a", "json", "x.y") != Extraction("a", "json", "x.z")
    assert parse_expect({"json": {"a": {"b": [1, 2]}}}, EXPECT) == \
        parse_expect({"json": {"a": {"b": [1, 2]}}}, EXPECT)


# -- extraction ---------------------------------------------------------------------------


def test_extract_from_json_header_and_regex() -> None:
    assert extract(rules().extract, response()) == {
        "token": "t0k3n", "item": "abc", "sid": "S-1", "csrf": "c5rf"}


def test_extracted_json_values_become_their_json_text() -> None:
    doc = {"n": 42, "f": 1.5, "t": True, "list": [1, "a"], "obj": {"k": None}}
    extractions = parse_extract({k: f"json:{k}" for k in doc}, LABEL)
    assert extract(extractions, response(json.dumps(doc).encode())) == {
        "n": "42", "f": "1.5", "t": "true", "list": '[1,"a"]', "obj": '{"k":null}'}


def test_integers_beyond_64_bits_stay_exact() -> None:
    """orjson reads them as floats; the values found are taken from an exact reading."""
    big = b'{"id": 123456789012345678901234567890, "ids": [-9223372036854775809], "f": 1e30}'
    extractions = parse_extract({"id": "json:id", "ids": "json:ids", "f": "json:f"}, LABEL)
    assert extract(extractions, response(big)) == {
        "id": "123456789012345678901234567890", "ids": "[-9223372036854775809]", "f": "1e+30"}
    expect = parse_expect({"json": {"id": 123456789012345678901234567890}}, EXPECT)
    assert failed_check(expect, response(big)) is None
    assert failed_check(expect, response(big.replace(b"890,", b"891,"))) is not None


@pytest.mark.parametrize("spec, body, headers, reason", [
    ("json:items[1].id", BODY, HEADERS, "json:items[1].id found nothing"),
    ("json:missing", b'{"missing": null}', HEADERS, "json:missing found nothing"),
    ("json:a", b"<html>", HEADERS, "json:a: body is not JSON"),
    ("json:a", b"", HEADERS, "json:a: body is not JSON"),
    ("json:abs(a)", b'{"a": "secret-value"}', HEADERS,
     "json:abs(a) failed on this body (a function got a value of the wrong type)"),
    ("json:a", None, HEADERS, "json:a: body larger than max_body 1 MiB: extraction not possible"),
    ("regex:id=(\\d+)", None, HEADERS,
     "regex:id=(\\d+): body larger than max_body 1 MiB: extraction not possible"),
    ("regex:id=(\\d+)", b"id=abc", HEADERS, "regex:id=(\\d+) found nothing"),
    ("regex:id=(\\d+)|none", b"none", HEADERS, "regex:id=(\\d+)|none found nothing"),
    ("header:X-Missing", BODY, HEADERS, "header:X-Missing found no such header"),
])
def test_failed_extractions_say_which_and_why(spec: str, body: bytes | None,
                                              headers: list[tuple[bytes, bytes]],
                                              reason: str) -> None:
    extractions = parse_extract({"v": spec}, LABEL)
    with pytest.raises(ExtractionFailed) as info:
        extract(extractions, response(body, headers=headers))
    assert info.value.reason == reason
    assert "secret-value" not in reason   # response content never goes into a failure


def test_header_extraction_needs_no_body_and_takes_the_first_of_a_name() -> None:
    headers = [(b"X-SESSION", b"first"), (b"x-session", b"second"), (b"X-Latin", b"caf\xe9")]
    extractions = parse_extract({"s": "header:x-Session", "l": "header:X-Latin"}, LABEL)
    assert extract(extractions, response(None, headers=headers)) == {"s": "first", "l": "café"}


def test_regex_finds_a_value_in_an_html_page() -> None:
    extractions = parse_extract({"csrf": 'regex:name="csrf" value="([^"]+)"'}, LABEL)
    page = b'<form><input type="hidden" name="csrf" value="a1/b2+c3=="></form>'
    assert extract(extractions, response(page, headers=[])) == {"csrf": "a1/b2+c3=="}


def test_regex_reads_the_body_as_utf8_text() -> None:
    extractions = parse_extract({"v": "regex:prix=(\\w+)€"}, LABEL)
    assert extract(extractions, response("prix=dix€".encode())) == {"v": "dix"}
    assert extract(extractions, response(b"\xff\xfe prix=ok\xe2\x82\xac")) == {"v": "ok"}


# -- the fast path for plain paths ---------------------------------------------------------


def test_plain_paths_skip_the_interpreter_and_others_keep_it() -> None:
    for plain in ("a", "a.b", "items[0].id", "a[0][-1]", '"my key".x', "[0]", "@.a"):
        assert isinstance(compile_jmespath(plain), FieldPath), plain
    for other in ("a[*].b", "a[]", "a[0:2]", "length(a)", "a || b", "a[?b]", "{x: a}", "`1`"):
        assert not isinstance(compile_jmespath(other), FieldPath), other


keys = st.sampled_from(["a", "b", "my key", "0"])
documents = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10)
paths = st.lists(keys.map(lambda k: f'."{k}"') | st.integers(-3, 3).map(lambda i: f"[{i}]"),
                 min_size=1, max_size=4).map(lambda parts: "@" + "".join(parts))


@settings(max_examples=300, deadline=None)
@given(document=documents, path=paths)
def test_the_fast_path_answers_as_jmespath_does(document: Any, path: str) -> None:
    fast = compile_jmespath(path)
    assert isinstance(fast, FieldPath)
    assert fast.search(document) == jmespath.search(path, document)


# -- checks -------------------------------------------------------------------------------


def test_a_response_that_meets_every_expectation_passes() -> None:
    assert failed_check(rules().expect, response()) is None
    assert failed_check(Expectations(), response(b"anything", status=500)) is None


@pytest.mark.parametrize("expect, status, body, name", [
    ({"status": [201]}, 200, BODY, "status"),
    ({"status": [201], "body_contains": "nope"}, 500, BODY, "status"),   # status first
    ({"body_contains": ["order_id", "nope"]}, 201, BODY, 'body_contains "nope"'),
    ({"body_contains": "naïve \"q\"\n"}, 201, BODY, 'body_contains "naïve \\"q\\"\\n"'),
    ({"json": {"items[0].id": "abd"}}, 201, BODY, 'json items[0].id == "abd"'),
    ({"json": {"order_id": True}}, 201, BODY, "json order_id == true"),
    ({"json": {"missing": {"a": [1]}}}, 201, BODY, 'json missing == {"a":[1]}'),
    ({"json": {"abs(page)": 1}}, 201, BODY, "json abs(page) == 1"),
    ({"json": {"a": 1}}, 201, b"<html>", "json a == 1 (body is not JSON)"),
    ({"body_contains": "x", "json": {"a": 1}}, 201, None,
     'body_contains "x" (body over max_body 1 MiB)'),
    ({"json": {"a": 1}}, 201, None, "json a == 1 (body over max_body 1 MiB)"),
])
def test_a_failed_check_is_named(expect: dict[str, Any], status: int, body: bytes | None,
                                 name: str) -> None:
    assert failed_check(parse_expect(expect, EXPECT), response(body, status)) == name


def test_json_equality_is_json_not_python() -> None:
    assert same_json(1, 1.0) and same_json([1, {"a": 2.0}], [1.0, {"a": 2}])
    assert not same_json(True, 1) and not same_json(1, True) and not same_json(0, False)
    assert not same_json(None, False) and not same_json("1", 1)
    assert not same_json([1], [1, 2]) and not same_json({"a": 1}, {"b": 1})
    assert not same_json([1], {"0": 1})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_an_expected_value_matches_itself_in_any_body(value: Any) -> None:
    """Whatever JSON value the file expects, a body holding exactly it passes: through
    TOML-like input, canonical text, pickling, and the worker's parser."""
    expect = pickle.loads(pickle.dumps(parse_expect({"json": {"v": value}}, EXPECT)))
    body = json.dumps({"v": value}).encode()
    assert failed_check(expect, response(body)) is None
    assert failed_check(expect, response(json.dumps({"v": [value]}).encode())) is not None


@settings(max_examples=100, deadline=None)
@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
       key=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
       value=st.text(min_size=1, max_size=30))
def test_any_name_and_key_extract_what_the_body_holds(name: str, key: str, value: str) -> None:
    if name in ("seq", "user", "uuid", "randint"):
        return
    extractions = pickle.loads(pickle.dumps(parse_extract({name: f"json:{key}"}, LABEL)))
    assert extract(extractions, response(json.dumps({key: value}).encode())) == {name: value}


# -- evaluate: what the worker calls --------------------------------------------------------


def test_evaluate_checks_then_extracts() -> None:
    r = rules()
    assert evaluate(r, 201, HEADERS, BODY) == (
        {"token": "t0k3n", "item": "abc", "sid": "S-1", "csrf": "c5rf"}, None, None)
    assert evaluate(r, 500, HEADERS, BODY) == ({}, "check", "status")
    bad_extract = rules(extract={"x": "json:nothing_here"})
    assert evaluate(bad_extract, 201, HEADERS, BODY) == (
        {}, "extract", "json:nothing_here found nothing")
    assert evaluate(ResponseRules(), 404, [], None) == ({}, None, None)
    a, b = evaluate(bad_extract, 500, [], b""), evaluate(bad_extract, 500, [], b"")
    assert a.values is not b.values   # each outcome its own dict: the worker may keep it


# -- cookies ------------------------------------------------------------------------------


def set_cookie(*lines: str) -> list[tuple[bytes, bytes]]:
    return [(b"Content-Type", b"text/plain")] + [(b"Set-Cookie", line.encode("latin-1"))
                                                 for line in lines]


def test_cookies_come_back_to_the_paths_they_were_set_for() -> None:
    jar = CookieJar("127.0.0.1", https=False)
    assert jar.header("/") is None
    jar.receive(set_cookie("sid=abc; Path=/; HttpOnly; SameSite=Lax",
                           "cart=c1; Path=/shop", "login=1"), "/api/auth/login?next=/")
    assert jar.header("/shop/items?page=2") == "cart=c1; sid=abc"   # longer path first
    assert jar.header("/shop") == "cart=c1; sid=abc"
    assert jar.header("/shopping") == "sid=abc"                       # /shop is not a prefix
    assert jar.header("/api/auth/refresh") == "login=1; sid=abc"      # default path /api/auth
    assert jar.header("/api") == "sid=abc"


def test_a_cookie_is_replaced_and_deleted_as_servers_do() -> None:
    jar = CookieJar("localhost", https=False)
    jar.receive(set_cookie("a=1; Path=/", "b=2; Path=/"), "/", now=1000.0)
    jar.receive(set_cookie("a=3; Path=/"), "/", now=1000.0)
    assert jar.header("/", now=1000.0) == "a=3; b=2"                   # a keeps its place
    jar.receive(set_cookie("a=; Max-Age=0; Path=/"), "/", now=1000.0)
    jar.receive(set_cookie("b=x; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), "/",
                now=1000.0)
    assert jar.header("/", now=1000.0) is None and len(jar) == 0


def test_cookies_expire_with_time() -> None:
    jar = CookieJar("localhost", https=False)
    jar.receive(set_cookie("short=1; Max-Age=5; Path=/",
                           "dated=1; Path=/; Expires=Wed, 21 Oct 2015 07:28:10 GMT",
                           "session=1; Path=/"), "/", now=1445412480.0)   # 07:28:00 GMT
    assert jar.header("/", now=1445412484.0) == "short=1; dated=1; session=1"
    assert jar.header("/", now=1445412485.0) == "dated=1; session=1"
    assert jar.header("/", now=1445412491.0) == "session=1"
    jar.receive(set_cookie("m=1; Max-Age=10; Expires=Wed, 21 Oct 2015 07:28:00 GMT"), "/",
                now=1445412491.0)   # Max-Age wins over an Expires in the past
    assert jar.header("/", now=1445412491.0) == "session=1; m=1"   # older first


def test_what_a_jar_refuses() -> None:
    plain = CookieJar("shop.example.test", https=False)
    plain.receive(set_cookie("s=1; Secure", "d=1; Domain=other.test", "noequals",
                             "bad name=1", "=nameless"), "/")
    assert plain.header("/") is None and len(plain) == 0
    secure = CookieJar("shop.example.test", https=True)
    secure.receive(set_cookie("s=1; Secure; Path=/", "d=1; Domain=.example.test; Path=/",
                              "p=1; Partitioned; Path=/", "q=1; Priority=High; Path=/"), "/")
    assert secure.header("/") == "s=1; d=1; p=1; q=1"   # unknown attributes are not cookies
    ip = CookieJar("[::1]", https=False)
    ip.receive(set_cookie("a=1; Domain=1; Path=/", "b=1; Domain=::1; Path=/"), "/")
    assert ip.header("/") == "b=1"


def test_values_go_back_byte_for_byte() -> None:
    jar = CookieJar("localhost", https=False)
    jar.receive(set_cookie('q="quoted value"; Path=/', "e=a=b==; Path=/"), "/")
    assert jar.header("/") == 'q="quoted value"; e=a=b=='


def test_the_parser_relied_on_still_parses_as_expected() -> None:
    """``http.cookiejar.parse_ns_headers`` is undocumented: hold it to what the jar needs."""
    from http.cookiejar import parse_ns_headers  # type: ignore[attr-defined]
    assert parse_ns_headers([("a=1; Path=/x; Max-Age=5; Secure; Partitioned; "
                             "Expires=Wed, 21 Oct 2015 07:28:00 GMT")]) == [[
        ("a", "1"), ("path", "/x"), ("max-age", "5"), ("secure", None),
        ("Partitioned", None), ("expires", 1445412480.0), ("version", "0")]]


@pytest.mark.parametrize("path, default", [
    ("/", "/"), ("/login", "/"), ("/api/auth/login", "/api/auth"), ("/api/", "/api"),
    ("/a/b?x=/c/d", "/a"), ("", "/"), ("*", "/"),
])
def test_default_cookie_path(path: str, default: str) -> None:
    assert default_path(path) == default


@settings(max_examples=100, deadline=None)
@given(cookies=st.dictionaries(st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True),
                               st.from_regex(r"[A-Za-z0-9%._\-]{0,20}", fullmatch=True),
                               min_size=1, max_size=6))
def test_every_cookie_set_comes_back_once(cookies: dict[str, str]) -> None:
    jar = CookieJar("localhost", https=False)
    jar.receive(set_cookie(*(f"{k}={v}; Path=/" for k, v in cookies.items())), "/")
    header = jar.header("/a/b") or ""
    pairs = [p.partition("=") for p in header.split("; ")]
    assert {k: v for k, _, v in pairs} == cookies and len(pairs) == len(cookies)
    assert re.fullmatch(r"[\x21-\x7e ]*", header)   # one header line, nothing to escape


class _Collect:
    """httptools callbacks, as the worker would keep them for a step with rules."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body


def test_headers_as_httptools_delivers_them_feed_the_rules_and_the_jar() -> None:
    """The representation chosen is httptools' own: (name, value) bytes, one pair per line,
    names as sent, repeated Set-Cookie lines apart; bytes fed in small pieces."""
    body = b'{"access_token": "t", "order_id": 1}'
    raw = (b"HTTP/1.1 201 Created\r\nX-Session: s-9\r\nset-cookie: a=1; Path=/\r\n"
           b"Set-Cookie: b=2; Path=/shop\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    sink = _Collect()
    parser = httptools.HttpResponseParser(sink)
    for i in range(0, len(raw), 7):
        parser.feed_data(raw[i:i + 7])
    plain = parse_rules({"extract": {"token": "json:access_token", "sid": "header:x-session"},
                         "expect": {"status": 201, "body_contains": "order_id"}}, WHERE)
    assert evaluate(plain, parser.get_status_code(), sink.headers, bytes(sink.body)) == (
        {"token": "t", "sid": "s-9"}, None, None)
    jar = CookieJar("127.0.0.1", https=False)
    jar.receive(sink.headers, "/login")
    assert jar.header("/shop/cart") == "b=2; a=1"
