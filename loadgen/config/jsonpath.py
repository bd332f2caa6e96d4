"""JMESPath expressions for ``json:`` extractions and ``expect.json`` checks, compiled once.

Compiling is the validation (a syntax error is bad input at config time, exit 2), so
``jmespath`` is imported on the config side; it is pure Python and imports no sockets,
so unpickling a plan before gevent patches stays safe.  A plain path of fields and
indexes, the usual case, is walked directly (``FieldPath``) instead of through
jmespath's interpreter: bench/checks.py measured that interpreter at 24-27 µs for
``items[0].id``, most of what a step's rules cost per response.
"""

from __future__ import annotations

from typing import Any, Protocol

import jmespath
from jmespath import exceptions as jmes_errors
from jmespath.functions import Functions


class Searcher(Protocol):
    """A compiled JSON expression: ``search(document)`` -> the value found, None if none."""

    def search(self, value: Any) -> Any: ...


class FieldPath:
    """A JMESPath expression that is only fields and indexes (``items[0].id``, the usual
    case), walked directly: the same answer as jmespath's interpreter, without its
    per-node dispatch in pure Python (``tests/test_checks_unit.py`` holds the two equal)."""

    __slots__ = ("steps",)

    def __init__(self, steps: tuple[str | int, ...]) -> None:
        self.steps = steps

    def search(self, value: Any) -> Any:
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(value, dict):
                    return None
                value = value.get(step)
            else:
                if not isinstance(value, list):
                    return None
                try:
                    value = value[step]
                except IndexError:
                    return None
        return value


def _steps(node: Any) -> list[str | int] | None:
    """``node``'s fields and indexes in order, or None if it does anything else."""
    kind, children = node.get("type"), node.get("children", [])
    if kind == "field":
        return [node["value"]]
    if kind in ("identity", "current"):
        return []
    if kind == "subexpression" or kind == "index_expression":
        steps: list[str | int] = []
        for i, child in enumerate(children):
            if kind == "index_expression" and i > 0:
                if child.get("type") != "index":
                    return None
                steps.append(child["value"])
                continue
            found = _steps(child)
            if found is None:
                return None
            steps.extend(found)
        return steps
    return None


def compile_jmespath(expression: str) -> Searcher:
    """Compile ``expression``, refusing unknown function names too (jmespath only finds
    those when searching, i.e. on the first response of the run); ValueError with a
    one-line reason otherwise.  A plain path of fields and indexes becomes a
    ``FieldPath``; anything else stays jmespath's."""
    try:
        parsed = jmespath.compile(expression)
    except jmes_errors.EmptyExpressionError:
        raise ValueError("empty expression") from None
    except jmes_errors.IncompleteExpressionError as exc:
        raise ValueError(f"incomplete expression at character {exc.lex_position + 1}") from None
    except jmes_errors.LexerError as exc:
        raise ValueError(f"{exc.message} at character {exc.lexer_position + 1}") from None
    except jmes_errors.ParseError as exc:
        raise ValueError(f"{exc.msg} at character {exc.lex_position + 1}") from None
    tree = dict(parsed.parsed)
    unknown = _unknown_functions(tree)
    if unknown:
        raise ValueError(f"unknown function {unknown[0]}()")
    steps = _steps(tree)
    return FieldPath(tuple(steps)) if steps is not None else parsed


def _unknown_functions(node: dict[str, Any]) -> list[str]:
    known = Functions.FUNCTION_TABLE   # set by its metaclass: every built-in function
    found = [node["value"]] if (node.get("type") == "function_expression"
                                and node.get("value") not in known) else []
    for child in node.get("children", ()):
        if isinstance(child, dict):
            found.extend(_unknown_functions(child))
    return found
