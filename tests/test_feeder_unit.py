"""Feeders: reading CSV / JSON Lines, one-line errors with file and line, the modes, pickling.

Pure and fast (files in tmp_path, no server).
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
from collections import Counter

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from loadgen.config.feeder import PER_USER, RANDOM, SEQUENTIAL, from_rows, load
from loadgen.config.model import ConfigError
from loadgen.config.template import parse
from loadgen.engine.render import compile_request


def write(tmp_path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def refused(path: str, mode: str = SEQUENTIAL) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, mode)
    message = str(caught.value)
    assert message.startswith(f"feeder {path}") and "\n" not in message
    return message


# --- reading ----------------------------------------------------------------------------------

def test_csv_with_bom_crlf_quotes_and_blank_lines(tmp_path):
    path = write(tmp_path, "users.csv",
                 b'\xef\xbb\xbfid,name\r\n1,"Smith, J"\r\n\r\n2,"say ""hi"""\r\n3,Zo\xc3\xab\r\n')
    f = load(path)
    assert f.columns == ("id", "name") and len(f) == 3
    assert [f.row(i) for i in range(3)] == [["1", "Smith, J"], ["2", 'say "hi"'], ["3", "Zoë"]]
    assert f.name == path and f.mode == SEQUENTIAL


def test_csv_empty_values_and_one_column(tmp_path):
    f = load(write(tmp_path, "a.csv", "id\n\n1\n2\n"))
    assert [f.row(i) for i in range(len(f))] == [["1"], ["2"]]
    g = load(write(tmp_path, "b.csv", "a,b,c\n,,\nx,,z\n"))
    assert g.row(0) == ["", "", ""] and g.row(1) == ["x", "", "z"]


def test_jsonl_values_are_strings_or_json_text(tmp_path):
    path = write(tmp_path, "a.jsonl",
                 '{"id": 1, "name": "A", "ok": true, "x": null, "f": 1.5}\n\n'
                 '{"name": "B", "id": 2, "ok": false, "x": "", "f": -0.0}\n')
    f = load(path)
    assert f.columns == ("id", "name", "ok", "x", "f")
    assert f.row(0) == ["1", "A", "true", "null", "1.5"]
    assert f.row(1) == ["2", "B", "false", "", "-0.0"]


def test_format_from_extension_then_content(tmp_path):
    assert load(write(tmp_path, "a.ndjson", '{"a": "1"}\n')).columns == ("a",)
    assert load(write(tmp_path, "data.txt", '  {"a": "1"}\n')).columns == ("a",)
    assert load(write(tmp_path, "data", "a,b\n1,2\n")).columns == ("a", "b")
    # .csv is CSV even when it starts with a brace
    assert load(write(tmp_path, "b.csv", "{a},b\n1,2\n")).columns == ("{a}", "b")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00",
                                                         blacklist_categories=("Cs",)),
                                 max_size=6), min_size=2, max_size=2),
                min_size=1, max_size=20))
def test_csv_roundtrip_of_any_values(tmp_path_factory, rows):
    rows = [r for r in rows if any(r)]   # a row of empty values is a blank line in CSV
    if not rows:
        return
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["a", "b"])
    w.writerows(rows)
    path = tmp_path_factory.mktemp("f") / "x.csv"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    f = load(str(path))
    assert [f.row(i) for i in range(len(f))] == rows


# --- errors: one line, the file and the line ----------------------------------------------------

@pytest.mark.parametrize("name, data, problem", [
    ("e.csv", "", "the file is empty"),
    ("e.csv", "\n\n  \n", "the file is empty"),
    ("h.csv", "id,name\n", "no rows (only a header)"),
    ("h.csv", "id,name\n\n\n", "no rows (only a header)"),
    ("r.csv", "id,name\n1,a\n2\n", "line 3: 1 field, the header has 2"),
    ("r.csv", "id,name\n1,a,b\n", "line 2: 3 fields, the header has 2"),
    ("d.csv", "id,id\n1,2\n", "line 1: column 'id' appears twice"),
    ("n.csv", "id,,x\n1,2,3\n", "line 1: column 2 has no name"),
    ("z.csv", "id\n1\n2\x00\n", "line 3: contains a NUL character"),
    ("q.csv", 'id\n"1\n', "not valid CSV"),
    ("a.jsonl", '{"a": 1}\n[1, 2]\n', "line 2: not a JSON object"),
    ("a.jsonl", '{"a": 1}\n"x"\n', "line 2: not a JSON object"),
    ("a.jsonl", '{"a": 1}\n{"a": \n', "line 2: not JSON"),
    ("a.jsonl", '{"a": 1}\n{"b": 1}\n', "line 2: keys ['b'] differ from line 1's ['a']"),
    ("a.jsonl", '{"a": 1}\n{"a": 1, "b": 2}\n', "line 2: keys"),
    ("a.jsonl", '{"a": 1}\n{"a": 1, "a": 2}\n', "line 2: keys"),
    ("a.jsonl", '{"a": 1, "a": 2}\n', "line 1: column 'a' appears twice"),
    ("a.jsonl", '{"a": {"b": 1}}\n', "line 1: the value of 'a' is not a scalar"),
    ("a.jsonl", '\n{"a": [1]}\n', "line 2: the value of 'a' is not a scalar"),
    ("a.jsonl", '{"": 1}\n', "line 1: column 1 has no name"),
])
def test_bad_feeders(tmp_path, name, data, problem):
    assert problem in refused(write(tmp_path, name, data))


def test_not_utf8_names_the_line(tmp_path):
    assert "line 2: not UTF-8" in refused(write(tmp_path, "l.csv", b"id\n\xff\n"))


def test_missing_unreadable_and_not_regular(tmp_path):
    assert "cannot read it" in refused(str(tmp_path / "missing.csv"))
    assert "not a regular file" in refused(str(tmp_path))
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in refused(str(fifo))   # never blocks on open
    locked = write(tmp_path, "locked.csv", "a\n1\n")
    os.chmod(locked, 0)
    if os.geteuid() != 0:
        assert "cannot read it" in refused(locked)


def test_bad_mode(tmp_path):
    assert "mode 'sometimes' is not one of sequential, random, per-user" in refused(
        write(tmp_path, "a.csv", "a\n1\n"), "sometimes")


# --- modes -------------------------------------------------------------------------------------

def rows(n: int):
    return from_rows("mem", ("i",), ([str(i)] for i in range(n)))


def test_sequential_is_request_index_mod_n_whatever_the_split():
    f = rows(7)
    taken = []
    for first, count in ((0, 10), (10, 4), (14, 9)):     # three workers' ticket ranges
        pick = f.picker(worker=first)
        taken += [pick(k, 99)[0] for k in range(first, first + count)]
    assert taken == [str(k % 7) for k in range(23)]


def test_per_user_is_user_index_mod_n():
    pick = rows(3).with_mode(PER_USER).picker()
    assert [pick(seq, user)[0] for seq, user in ((0, 0), (1, 4), (9, 5), (2, 0))] == \
        ["0", "1", "2", "0"]


def test_random_is_uniform_and_seeded_per_worker():
    f = rows(10).with_mode(RANDOM)

    def draws(worker: int, seed: int) -> list[str]:
        pick = f.picker(worker=worker, seed=seed)
        return [pick(k, 0)[0] for k in range(5000)]

    a = draws(0, 1)
    assert a == draws(0, 1)                     # reproducible
    assert a != draws(1, 1) and a != draws(0, 2)   # per worker, per seed
    counts = Counter(a)
    assert set(counts) == {str(i) for i in range(10)}
    assert all(400 <= c <= 600 for c in counts.values()), counts   # ~500 each; 5+ sigma bounds


# --- what the worker holds ----------------------------------------------------------------------

def test_pickles_compactly_and_equal(tmp_path):
    lines = "".join(f"{i},token-{i:08d}\n" for i in range(20000))
    path = write(tmp_path, "big.csv", "id,token\n" + lines)
    f = load(path, RANDOM)
    data = pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL)
    size = os.path.getsize(path)
    assert len(data) < 1.2 * size
    assert f.nbytes < 1.3 * size
    g = pickle.loads(data)
    assert (g.columns, g.mode, len(g)) == (f.columns, f.mode, len(f))
    assert all(g.row(i) == f.row(i) for i in (0, 1, 9999, 19999))
    assert g.row(19999) == ["19999", "token-00019999"]


def test_values_unfit_for_a_path_or_header_are_found_at_load(tmp_path):
    path = write(tmp_path, "u.csv", 'id,name,note\n1,ann,x\n2,bo b,"two\nlines"\n3,caf\u00e9,y\n')
    f = load(path)
    f.check_use(["id"], "path", "--endpoint")
    f.check_use(["id", "name"], "header", "--header")
    space = "line 3: the value of column 'name' contains a space, not allowed in a path"
    lf = "line 3: the value of column 'note' contains LF, not allowed in a header"
    for cols, place, expected in ((["name"], "path", space), (["note"], "header", lf)):
        with pytest.raises(ConfigError) as caught:
            f.check_use(cols, place, "--endpoint /u/{{ name }}")
        assert str(caught.value) == f"--endpoint /u/{{{{ name }}}}: feeder {path} {expected}"


@settings(max_examples=300)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                               blacklist_characters="\x00"), max_size=6),
                min_size=1, max_size=4))
@example(["#"]).via("excluded from visible ASCII")
@example(["a b", "ok"]).via("a space")
@example(["caf\u00e9"]).via("not ASCII")
@example(["~!\"$"]).via("the edges of the range around #")
def test_a_row_is_looked_at_exactly_when_a_value_is_unfit(values):
    """The one-pass byte filter at load flags a row exactly when config.template's own checks
    would refuse one of its values in a path (a target refuses all a header refuses)."""
    from loadgen.config.feeder import _ROW_TARGET_FIT, _Builder
    from loadgen.config.template import header_flaw, target_flaw

    blob = _Builder("f", tuple(f"c{i}" for i in range(len(values))))
    blob.add(values, 2)
    unfit = any(target_flaw(v) or header_flaw(v) for v in values)
    assert bool("\x00".join(values).encode().translate(None, _ROW_TARGET_FIT)) == unfit
    assert bool(blob.unfit) == unfit


def test_rows_feed_a_compiled_request(tmp_path):
    f = load(write(tmp_path, "t.jsonl", '{"id": 7, "token": "abc"}\n{"id": 8, "token": "def"}\n'))
    renderer = compile_request(
        "GET", "h", parse("/items/{{ id }}", "p", f.columns),
        [("Authorization", parse("Bearer {{ token }}", "h", f.columns))], b"", f.columns)
    assert not isinstance(renderer, bytes)
    pick = f.picker()
    sent = [renderer.render(k, 0, pick(k, 0)) for k in range(3)]
    assert [s.split(b"\r\n")[0] for s in sent] == [b"GET /items/7 HTTP/1.1",
                                                    b"GET /items/8 HTTP/1.1",
                                                    b"GET /items/7 HTTP/1.1"]
    assert b"Authorization: Bearer def\r\n" in sent[1]


def test_from_rows_checks_like_a_file():
    with pytest.raises(ConfigError, match="line 3: 1 field, expected 2"):
        from_rows("mem", ("a", "b"), [["1", "2"], ["1"]])
    with pytest.raises(ConfigError, match="no rows"):
        from_rows("mem", ("a",), [])
    with pytest.raises(ConfigError, match="NUL"):
        from_rows("mem", ("a",), [["x\x00y"]])
    assert json.loads(json.dumps(from_rows("mem", ("a",), [["1"]]).row(0))) == ["1"]


# mostly characters a URL or token has; some that break HTTP; any text at all
_safe = st.text(alphabet=st.sampled_from([*"aZ09-_.~%/?=&:;+,{}"]), max_size=8)
_values = st.one_of(
    _safe, _safe, _safe,
    st.text(alphabet=st.sampled_from([*"a{}", " ", "\t", "\r", "\n", "#", "\x7f", "\x85",
                                      "\u00e9", "\u20ac"]), max_size=4),
    st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_values, _values), min_size=1, max_size=3), st.integers(0, 50))
def test_rows_that_pass_check_use_always_render_valid_http(rows, seq):
    """Whatever a feeder holds: if the config accepts its columns where they go, every
    request rendered from it is parsed by llhttp (what servers use) with exactly the row's
    values in the path and the header, and nothing injected."""
    import httptools

    rows = [r for r in rows if "\x00" not in r[0] + r[1]]
    if not rows:
        return
    f = from_rows("mem", ("id", "token"), rows)
    try:
        f.check_use(["id"], "path", "p")
        f.check_use(["token"], "header", "h")
    except ConfigError:
        event("refused")
        return
    event("rendered")
    renderer = compile_request("GET", "h", parse("/items/{{ id }}", "p", f.columns),
                               [("X-Token", parse("{{ token }}", "h", f.columns))], b"",
                               f.columns)
    assert not isinstance(renderer, bytes)
    row = f.picker()(seq, 0)
    seen: dict[str, object] = {"headers": []}

    class Sink:
        def on_url(self, url: bytes) -> None:
            seen["url"] = url

        def on_header(self, name: bytes, value: bytes) -> None:
            seen["headers"].append((name, value))  # type: ignore[attr-defined]

        def on_message_complete(self) -> None:
            seen["done"] = True

    httptools.HttpRequestParser(Sink()).feed_data(renderer.render(seq, 0, row))
    assert seen.get("done") and seen["url"] == ("/items/" + row[0]).encode()
    name, value = seen["headers"][-1]  # type: ignore[index]
    assert (name, value.strip(b" \t")) == (b"X-Token", row[1].strip(" \t").encode("latin-1"))
    assert len(seen["headers"]) == 4   # Host, User-Agent, Accept, X-Token: nothing injected
