"""What a scenario file (or a command, for the options it fixes) says, already typed.

A ``Settings`` is one layer of a run's input: each field is named like the
Click parameter of ``loadgen run`` it stands for, holds the parsed value, and
is None when that layer does not say it.  ``commands.inputs.build_config`` lays
Click's values over it: an option given on the command line (or through its
environment variable) wins, a field set here beats Click's default.  So a
scenario file is parsed once, into these values, and never turned back into
command-line text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from loadgen.config.model import Endpoint, Proxy
from loadgen.config.stages import StageSpec


@dataclass(frozen=True)
class EndpointSpec:
    """A scenario's ``[[endpoints]]`` table: an endpoint complete by itself.

    ``expect_status`` None: the run's (the top-level ``expect_status`` or
    ``--expect-status``) applies, known only once the layers are merged.
    """

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    weight: float = 1.0
    expect_status: frozenset[int] | None = None
    name: str = ""                  # the row's name; default "METHOD path"
    template_body: bool = False     # ``body`` / ``body_template_file``: may hold ``{{ }}``
    rules: Any = None               # config.checks.ResponseRules (``expect``); None: no checks

    def endpoint(self, run_expect_status: frozenset[int]) -> Endpoint:
        """The endpoint, its own statuses (more specific) before the run's.

        ``expect.status`` is folded into the success set (it replaces it, as the
        endpoint's ``expect_status`` would): a wrong status stays a failure *by status*,
        as it always was; the body checks left are what fails with kind ``check``.
        """
        ok = self.expect_status or run_expect_status
        rules = self.rules
        if rules is not None and rules.expect.status is not None:
            ok = rules.expect.status
            rules = replace(rules, expect=replace(rules.expect, status=None))
        return Endpoint(self.method, self.path, self.body, self.headers, self.weight,
                        ok, self.name, self.template_body,
                        rules=rules if rules else None)


@dataclass(frozen=True)
class UserSpec:
    """A scenario's ``[[users]]`` table, typed: one kind of virtual user (``config.users``).

    Its steps are ``EndpointSpec``s named as written (``name`` or ``METHOD path``); the
    run's rows get the kind's name in front (``"shopper: GET /shop/items"``) when
    ``config.users.build_journeys`` makes them endpoints.  Templates are parsed there,
    once the feeder's columns are known.  ``source`` is the scenario file: error lines
    found then still name it.
    """

    name: str
    steps: tuple[EndpointSpec, ...]
    on_start: tuple[EndpointSpec, ...] = ()
    weight: float = 1.0
    think: tuple[float, float] = (0.0, 0.0)     # seconds: uniform in [lo, hi]
    refresh_on: frozenset[int] = frozenset()
    data: str | None = None                     # the kind's feeder file (a path), or None
    data_mode: str | None = None                # its mode (checked); None: sequential
    source: str = "<scenario>"


@dataclass(frozen=True)
class Settings:
    """One layer of typed input; None = not said here (see the module's docstring)."""

    url: str | None = None                          # checked: Target.parse accepts it
    endpoints: tuple[str, ...] | None = None        # plain paths, normalized
    endpoint_specs: tuple[EndpointSpec, ...] | None = None   # [[endpoints]] tables
    requests: int | None = None
    users: tuple[UserSpec, ...] | None = None       # [[users]] tables: a journey run
    iterations: int | None = None                   # journeys: iterations in total
    concurrency: int | None = None
    workers: int | None = None
    max_connections: int | None = None
    workers_per_node: int | None = None
    duration: float | None = None                   # seconds
    timeout: float | None = None                    # seconds, at least 1 ms
    rate: float | None = None                       # requests per second
    stages: tuple[StageSpec, ...] | None = None
    user_stages: tuple[tuple[float, int], ...] | None = None   # (seconds, users)
    method: str | None = None                       # upper case
    headers: tuple[tuple[str, str], ...] | None = None
    expect_status: frozenset[int] | None = None
    data: str | None = None
    data_file: str | None = None                    # a path; read when the config is built
    feeder: str | None = None                       # a path; read when the config is built
    feeder_mode: str | None = None                  # checked when the config is built
    thresholds: tuple[str, ...] | None = None       # parsed with the run's endpoints known
    auth: bool | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)   # never in a traceback
    login_endpoint: str | None = None               # normalized like a path
    token_field: str | None = None
    save: str | None = None
    visualize: bool | None = None
    output_image: str | None = None
    quiet: bool | None = None
    insecure: bool | None = None
    no_keepalive: bool | None = None
    cacert: str | None = None                       # paths; checked when the config is built
    cert: str | None = None
    key: str | None = None
    proxy: Proxy | Literal[False] | None = None     # False: no proxy (``proxy = ""``)
    no_proxy: bool | None = None
    cluster: str | None = None                      # checked when the config is built

    def said(self) -> dict[str, object]:
        """The fields this layer sets, by name (what a test or a message wants to see)."""
        return {name: value for name, value in vars(self).items() if value is not None}
