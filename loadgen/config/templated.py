"""Which endpoints are templated: ``{{ }}`` in paths, header values and inline bodies,
parsed against the feeder's columns and checked on a sample before any load.

An endpoint with no ``{{`` anywhere keeps ``templates`` None, so its worker builds
the very bytes it always did (``engine.wire.build_request``); one with any gets a
``RequestTemplates`` that the worker compiles (``engine.render.compile_request``).
Every problem is a ``ConfigError`` naming the option (or the endpoint) and the
problem: one line, exit 2, nothing sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from loadgen.config import feeder as feeders
from loadgen.config.model import ConfigError, Endpoint, merge_headers
from loadgen.config.template import (
    RequestTemplates,
    Template,
    check_rendered_header,
    check_rendered_path,
    parse,
    sample,
)

#: A feeder travels inside every worker's plan; on a cluster, to every node.
MAX_CLUSTER_FEEDER = 64 << 20
_OPEN = "{{"


def load_feeder(path: str | None, mode: str | None, cluster: str | None) -> feeders.Feeder | None:
    """``--feeder`` / ``data = { file, mode }`` read and checked, or None without one."""
    if path is None:
        if mode not in (None, feeders.SEQUENTIAL):
            raise ConfigError("--feeder-mode needs --feeder")
        return None
    if not path.strip():
        raise ConfigError("--feeder: empty file name")
    if mode is not None and mode not in feeders.MODES:
        raise ConfigError(f"--feeder-mode: {mode!r} is not one of {', '.join(feeders.MODES)}")
    loaded = feeders.load(path, mode or feeders.SEQUENTIAL)
    if cluster and loaded.nbytes > MAX_CLUSTER_FEEDER:
        raise ConfigError(f"--feeder: {path} holds {loaded.nbytes / (1 << 20):.1f} MiB of rows; "
                          "with --cluster it travels with every node's plan: at most 64 MiB")
    return loaded


def is_templated(text: str) -> bool:
    return _OPEN in text


def template_endpoints(endpoints: tuple[Endpoint, ...], run_headers: tuple[tuple[str, str], ...],
                       feeder: feeders.Feeder | None, cli: bool) -> tuple[Endpoint, ...]:
    """``endpoints`` with their ``templates`` set where a path, header value or inline body
    holds ``{{``.  ``cli``: the endpoints come from ``--endpoint`` / ``--data`` (error lines
    name those options), else from a scenario's tables (they name the endpoint)."""
    def where_of(e: Endpoint) -> Where:
        def where(part: str) -> str:
            if part.startswith("--header"):
                return "--header"
            if cli:
                return {"path": "--endpoint", "body": "--data"}.get(part, part)
            return f"endpoint {e.name!r}: {part}"
        return where

    return tuple(template_endpoint(e, run_headers, feeder, where_of(e)) for e in endpoints)


#: Names a part of a request in error lines: ``"path"``, ``"body"``, ``"header 'X'"`` (the
#: endpoint's own header) or ``"--header 'X'"`` (a run-wide one) -> the line's prefix.
Where = Callable[[str], str]


def template_endpoint(e: Endpoint, run_headers: tuple[tuple[str, str], ...],
                      feeder: feeders.Feeder | None, where: Where,
                      extracted: Iterable[str] = ()) -> Endpoint:
    """``e`` with its ``templates`` set if a path, header value or inline body holds ``{{``
    (else ``e`` itself).  ``extracted``: the names of values extracted by earlier steps of a
    journey, usable beside the feeder's columns and the built-ins."""
    columns = feeder.columns if feeder is not None else ()
    row = dict(zip(feeder.columns, feeder.row(0))) if feeder is not None else None
    names = tuple(extracted)
    own = {name.lower() for name, _ in e.headers}
    headers = merge_headers(run_headers, e.headers)
    body_text = _body_text(e)
    if not (is_templated(e.path) or body_text is not None
            or any(is_templated(v) for _, v in headers)):
        return e
    pwhere = where("path")
    path = parse(e.path, pwhere, columns, names)
    _check_use(feeder, path, "path", pwhere)   # every row, by line
    check_rendered_path(sample(path, row), pwhere)
    parsed: dict[str, Template] = {}
    for name, value in headers:
        if not is_templated(value) or value in parsed:
            continue
        hwhere = where(f"header {name!r}" if name.lower() in own else f"--header {name!r}")
        t = parse(value, hwhere, columns, names)
        _check_use(feeder, t, "header", hwhere)
        check_rendered_header(name, sample(t, row), hwhere)
        parsed[value] = t
    body = None
    if body_text is not None:
        body = parse(body_text, where("body"), columns, names)
    return replace(e, templates=RequestTemplates(path, tuple(parsed.items()), body))


def _body_text(e: Endpoint) -> str | None:
    """An inline body that holds ``{{``, as text; None for one sent byte for byte."""
    if not e.template_body or _OPEN.encode() not in e.body:
        return None
    try:
        return e.body.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"body of {e.name}: a templated body must be UTF-8 text") from None


def _check_use(feeder: feeders.Feeder | None, t: Template, place: str, where: str) -> None:
    if feeder is not None and t.columns:
        feeder.check_use(t.columns, place, where)


def templated_path(text: str, what: str) -> str | None:
    """A path holding ``{{``, stripped and starting with ``/`` (checked once parsed, against
    the feeder); None for a plain path (``normalize_path`` applies)."""
    given = text.strip()
    if not is_templated(given):
        return None
    if not given:
        raise ConfigError(f"{what}: empty path")
    return given if given.startswith("/") else "/" + given
