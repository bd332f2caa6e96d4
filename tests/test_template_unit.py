"""Templates: parsing, the one-line errors, rendered-value checks, and the compiled renderer.

Pure and fast: no server.  The renderer is held to ``build_request`` byte for byte
(no placeholders: identical bytes; with placeholders: identical to building the
substituted request statically), which is what keeps templated requests exactly
as loadgen sends static ones.
"""

from __future__ import annotations

import pickle
import random
import re
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.config.model import ConfigError
from loadgen.config.template import (
    COLUMN,
    EXTRACTED,
    RANDINT,
    SEQ,
    USER,
    UUID,
    Placeholder,
    check_rendered_header,
    check_rendered_path,
    header_value_safe,
    parse,
    sample,
    static,
    target_value_safe,
)
from loadgen.engine.render import RequestRenderer, compile_request, new_uuid
from loadgen.engine.wire import build_request
from loadgen.errors import InputError

COLS = ("id", "token")


def error(text: str, columns=COLS, extracted=()) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, "--endpoint", columns, extracted)
    assert isinstance(caught.value, InputError)
    message = str(caught.value)
    assert message.startswith("--endpoint: ") and "\n" not in message
    return message


# --- parsing ------------------------------------------------------------------------------

def test_parse_literals_and_typed_placeholders():
    t = parse("/items/{{ id }}/{{seq}}?u={{ user }}&r={{ randint(-2, 5) }}&x={{ uuid }}",
              "--endpoint", COLS)
    assert t.literals == ("/items/", "/", "?u=", "&r=", "&x=", "")
    assert t.placeholders == (Placeholder(COLUMN, "id"), Placeholder(SEQ, "seq"),
                              Placeholder(USER, "user"), Placeholder(RANDINT, "randint", -2, 5),
                              Placeholder(UUID, "uuid"))
    assert t.names == ("id", "seq", "user", "randint", "uuid")
    assert t.columns == ("id",) and t.extracted == ()
    assert not t.static


def test_extracted_values_and_repeats_listed_once():
    t = parse("Bearer {{ token }} {{ token }} {{ item }}", "h", (), ("token", "item"))
    assert [p.kind for p in t.placeholders] == [EXTRACTED] * 3
    assert t.extracted == ("token", "item") and t.names == ("token", "item")


def test_static_text_and_pickling():
    t = parse("/api/health", "--endpoint")
    assert t.static and t.text == "/api/health" and t.names == ()
    assert static("/x") == parse("/x", "w")
    u = parse("/a/{{ id }}", "w", COLS)
    assert pickle.loads(pickle.dumps(u)) == u
    with pytest.raises(AttributeError):
        u.source = "/b"   # type: ignore[misc]


@pytest.mark.parametrize("text, literal", [
    ('{"a": {"b": 1}}', '{"a": {"b": 1}}'),        # lone braces and }} are literal
    ("a } b { c }}", "a } b { c }}"),
    ("{{ '{{' }} x }}", "{{ x }}"),                 # Jinja's escape for a literal {{
    ('{{"{{"}}', "{{"),
    ("{{ '' }}", ""),
])
def test_literal_braces(text, literal):
    t = parse(text, "w")
    assert t.static and t.text == literal


def test_json_body_closing_braces_after_a_placeholder():
    t = parse('{"a": {"b": {{ id }}}}', "body", COLS)
    assert t.literals == ('{"a": {"b": ', "}}") and t.columns == ("id",)


def test_names_may_have_dots_and_dashes():
    t = parse("{{ user-id }}{{ a.b }}", "w", ("user-id", "a.b"))
    assert t.columns == ("user-id", "a.b")


# --- errors: one line, naming the option and the problem --------------------------------------

def test_unknown_variable_lists_what_is_known():
    message = error("/items/{{ idd }}")
    assert "unknown variable 'idd'" in message and "'{{ idd }}'" in message
    assert "feeder columns: id, token" in message and "seq, user, uuid" in message
    assert "no feeder" in error("/{{ id }}", columns=())


def test_unclosed_braces():
    message = error("/items/{{ id")
    assert "never closed" in message and "character 8" in message
    long = error("/a/{{ " + "x" * 100)
    assert len(long) < 120


def test_empty_placeholder():
    assert "empty placeholder" in error("/a/{{ }}")
    assert "empty placeholder" in error("/a/{{}}")


@pytest.mark.parametrize("text, problem", [
    ("{{ randint(5, 1) }}", "5 > 1"),
    ("{{ randint(1.5, 2) }}", "two integer literals"),
    ("{{ randint(a, 2) }}", "two integer literals"),
    ("{{ randint(1) }}", "two integer literals"),
    ("{{ randint(1, 2, 3) }}", "two integer literals"),
    ("{{ randint() }}", "two integer literals"),
    ("{{ randint }}", "needs its bounds"),
    ("{{ id + 1 }}", "not a variable name"),
    ("{{ {{ id }}", "not a variable name"),
    ('{"a": {{{ id }}}', "write a literal '{' before a placeholder as {{ '{' }}"),
    ("{{ 'a' 'b' }}", "not a variable name"),
])
def test_bad_placeholders(text, problem):
    assert problem in error(text)


def test_ambiguous_names_are_refused():
    assert "ambiguous" in error("{{ user }}", columns=("user",))
    assert "feeder column and an extracted value" in error("{{ id }}", extracted=("id",))
    parse("{{ id }}", "w", ("user", "id"))   # unused clashes are fine


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_is_one_config_error(text):
    try:
        t = parse(text, "w", COLS, ("x",))
    except ConfigError as exc:
        assert str(exc).startswith("w: ")
        return
    values = {"id": "I", "token": "T", "x": "X", "seq": "0", "user": "0", "uuid": "U"}
    rendered = t.substitute(values)
    if "{{" not in text:   # nothing to substitute: the text is itself
        assert rendered == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="{}'\""), max_size=8),
    st.sampled_from(["{{ id }}", "{{token}}", "{{ seq }}", "{{ randint(0, 9) }}", "}", "{",
                     "}}"])), max_size=8))
def test_parse_then_substitute_roundtrips(pieces):
    text = "".join(pieces)
    if "{{{" in text or "{{" in text.replace("{{ id }}", "").replace("{{token}}", "").replace(
            "{{ seq }}", "").replace("{{ randint(0, 9) }}", ""):
        return   # braces that happen to form a '{{' of their own
    t = parse(text, "w", COLS)
    expected = (text.replace("{{ id }}", "7").replace("{{token}}", "tk")
                .replace("{{ seq }}", "3").replace("{{ randint(0, 9) }}", "0"))
    assert t.substitute({"id": "7", "token": "tk", "seq": "3"}) == expected


# --- rendered values: valid HTTP ------------------------------------------------------------

@pytest.mark.parametrize("path, problem", [
    ("items/1", "does not start with '/'"),
    ("", "does not start with '/'"),
    ("/a b", "a space"),
    ("/a\r\nX: y", "CR"),
    ("/a\x00", "NUL"),
    ("/caf\u00e9", "percent-encode"),
    ("/a#b", "'#'"),
])
def test_rendered_path_problems(path, problem):
    with pytest.raises(ConfigError) as caught:
        check_rendered_path(path, "--endpoint /{{ id }}")
    assert problem in str(caught.value)
    assert str(caught.value).startswith("--endpoint /{{ id }}: the rendered path")
    if path.startswith("/"):
        assert not target_value_safe(path)


def test_config_time_sample_with_the_first_row():
    t = parse("/u/{{ id }}/{{ seq }}/{{ user }}/{{ uuid }}/{{ randint(3, 9) }}/{{ item }}", "p",
              COLS, ("item",))
    assert sample(t, {"id": "7", "token": "t"}) == \
        "/u/7/0/0/00000000-0000-4000-8000-000000000000/3/x"
    with pytest.raises(ConfigError, match="a space"):
        check_rendered_path(sample(t, {"id": "a b"}), "p")


def test_rendered_paths_that_are_fine():
    for path in ("/", "/items/1?x=%20&y=~", "/a/b;c=d@e:f"):
        check_rendered_path(path, "w")
        assert target_value_safe(path)


@pytest.mark.parametrize("value, problem", [
    ("a\r\nInjected: 1", "CR"), ("a\nb", "LF"), ("a\x00", "NUL"), ("a\x7f", "U+007F"),
    ("\u20ac", "U+20AC"),
])
def test_rendered_header_problems_do_not_show_the_value(value, problem):
    with pytest.raises(ConfigError) as caught:
        check_rendered_header("Authorization", "Bearer " + value, "--header")
    assert problem in str(caught.value) and "Bearer" not in str(caught.value)
    assert not header_value_safe(value)


def test_rendered_headers_that_are_fine():
    for value in ("Bearer abc.def", "a\tb", "caf\u00e9", ""):
        check_rendered_header("X", value, "w")
        assert header_value_safe(value)


# --- rendering: exactly build_request's bytes ---------------------------------------------------

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("close", [False, True])
@pytest.mark.parametrize("body", [b"", b'{"a": {"b": 1}}'])
@pytest.mark.parametrize("headers", [
    [], [("X-Env", "ci")], [("host", "v.test"), ("Accept", "text/{x}")],
    [("Content-Length", "0"), ("User-Agent", "me")], [("Connection", "close")],
])
def test_no_placeholders_render_exactly_build_request(method, close, body, headers):
    expected = build_request(method, "127.0.0.1:8080", "/base/a/{b}#frag", headers, body, close)
    templated = [(n, parse(v, "h")) for n, v in headers]
    path, tbody = parse("/a/{b}#frag", "p"), parse(body.decode(), "b")
    assert compile_request(method, "127.0.0.1:8080", path, templated, tbody, close=close,
                           prefix="/base") == expected
    renderer = RequestRenderer(method, "127.0.0.1:8080", path, templated, tbody, close=close,
                               prefix="/base")
    assert renderer.render(0, 0) == expected == renderer.render_format(0, 0)
    raw = RequestRenderer(method, "127.0.0.1:8080", path, templated, body, close=close,
                          prefix="/base")
    assert raw.render(7, 3) == expected


_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                        blacklist_characters="#"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(METHODS), close=st.booleans(), row=st.tuples(_value, _value),
       item=_value, seq=st.integers(0, 10**12), user=st.integers(0, 10**6),
       body=st.sampled_from(["", "{{ id }}", '{"seq": {{ seq }}, "item": "{{ item }}"}',
                             "{{ token }}{{ id }}"]))
def test_placeholders_render_as_the_substituted_static_request(method, close, row, item, seq,
                                                                user, body):
    path = parse("/items/{{ id }}/{{ user }}", "p", COLS)
    headers = [("Authorization", parse("Bearer {{ token }}", "h", COLS)),
               ("X-Item", parse("{{ item }}-{{ seq }}", "h", COLS, ("item",)))]
    tbody = parse(body, "b", COLS, ("item",))
    renderer = compile_request(method, "h:1", path, headers, tbody, COLS, close)
    values = {"id": row[0], "token": row[1], "item": item, "seq": str(seq), "user": str(user)}
    expected = build_request(method, "h:1", path.substitute(values),
                             [(n, t.substitute(values)) for n, t in headers],
                             tbody.substitute(values).encode(), close)
    assert isinstance(renderer, RequestRenderer)
    assert renderer.render(seq, user, list(row), {"item": item}) == expected
    assert renderer.render_format(seq, user, list(row), {"item": item}) == expected


def test_uuid_is_one_per_request_and_randint_draws_per_occurrence():
    path = parse("/o/{{ uuid }}/{{ randint(1, 3) }}/{{ randint(10, 10) }}", "p")
    body = parse('{"id": "{{ uuid }}"}', "b")
    renderer = compile_request("POST", "h", path, [], body, rng=random.Random(5))
    assert isinstance(renderer, RequestRenderer)
    seen, draws = set(), set()
    for seq in range(200):
        data = renderer.render(seq, 0)
        m = re.match(rb"POST /o/([0-9a-f-]{36})/(\d)/10 HTTP", data)
        assert m, data
        assert data.endswith(b'{"id": "' + m.group(1) + b'"}')
        assert uuid.UUID(m.group(1).decode()).version == 4
        seen.add(m.group(1))
        draws.add(int(m.group(2)))
    assert len(seen) == 200 and draws == {1, 2, 3}


def test_new_uuid_is_a_version_4_uuid_in_canonical_form():
    rng = random.Random(0)
    for _ in range(100):
        text = new_uuid(rng)
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 4 and u.variant == uuid.RFC_4122


def test_same_seed_same_requests():
    path = parse("/r/{{ randint(0, 1000000) }}/{{ uuid }}", "p")
    a = compile_request("GET", "h", path, [], b"", rng=random.Random(9))
    b = compile_request("GET", "h", path, [], b"", rng=random.Random(9))
    assert isinstance(a, RequestRenderer) and isinstance(b, RequestRenderer)
    assert [a.render(i, 0) for i in range(5)] == [b.render(i, 0) for i in range(5)]


def test_generated_code_holds_no_user_text():
    hostile = '"}{__import__("os")}{"\\'
    path = parse("/" + hostile.replace("{", "(").replace("}", ")") + "{{ id }}", "p", COLS)
    renderer = compile_request("GET", 'h"}', path, [("X-" + "a", parse(hostile, "h"))],
                               parse(hostile + "{{ id }}", "b", COLS), COLS)
    assert isinstance(renderer, RequestRenderer)
    data = renderer.render(0, 0, ["1"])
    assert data.endswith((hostile + "1").encode())
    assert not any(isinstance(c, str) and "import" in c for c in renderer.render.__code__.co_consts)


def test_transfer_encoding_is_refused_as_by_build_request():
    with pytest.raises(ValueError):
        compile_request("GET", "h", parse("/{{ id }}", "p", COLS),
                        [("Transfer-Encoding", static("chunked"))], b"", COLS)
