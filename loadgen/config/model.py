"""The plan of a run: frozen dataclasses, parsing and validation of user input.

Pure standard library on purpose: worker processes unpickle these before they
monkey-patch gevent, so nothing here may import sockets, ssl or urllib3.
Every validation error is a ``ConfigError`` whose message is the one line the
CLI prints before exiting with status 2.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from loadgen.errors import InputError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_PATH_SAFE = "".join(chr(c) for c in range(0x21, 0x7f))   # printable ASCII stays as typed
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: method and header names
_FIELD_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")   # RFC 9110 field-value octets


MAX_DURATION_S = 366 * 86400.0   # longer is a typo, and float("9" * 400) would be inf
MIN_TIMEOUT_S = 0.001


class ConfigError(InputError, ValueError):
    """Bad input: the message is shown to the user as-is, exit status 2."""


def parse_duration(text: str, what: str = "duration") -> float:
    """'30s', '2m', '1h', '250ms' or plain seconds; must be positive."""
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"{what}: {text!r} is not a duration (examples: 30s, 2m, 500ms)")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{what}: must be greater than zero, got {text!r}")
    if seconds > MAX_DURATION_S:
        raise ConfigError(f"{what}: {text!r} is too long (at most a year)")
    return seconds


def parse_timeout(text: str) -> float:
    """``--timeout``: a duration of at least 1 ms (shorter, every request would time out)."""
    seconds = parse_duration(text, "--timeout")
    if seconds < MIN_TIMEOUT_S:
        raise ConfigError(f"--timeout: {text!r} is shorter than 1ms")
    return seconds


def parse_header(text: str) -> tuple[str, str]:
    """'Name: value' -> (name, value); rejects anything that would corrupt the request."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not _TOKEN.match(name):
        raise ConfigError(f"--header: {text!r} is not of the form 'Name: value'")
    return name, header_value(name, value)


def header_value(name: str, value: str) -> str:
    """A header's value, stripped; rejects what would corrupt the request (a scenario's
    ``headers`` table gives name and value apart, the command line as one text)."""
    value = value.strip()
    if "\r" in value or "\n" in value:
        raise ConfigError(f"--header: the value of {name!r} contains a line break")
    if not _FIELD_VALUE.match(value):   # the request head is written as ISO-8859-1
        raise ConfigError(f"--header: the value of {name!r} has control characters or "
                          "characters outside ISO-8859-1 (percent-encode them)")
    return value


#: What counts as a success unless --expect-status / expect_status says otherwise.
DEFAULT_EXPECT_STATUS = frozenset(range(200, 300))
_STATUS_ITEM = re.compile(r"^(\d{3})(?:-(\d{3}))?$")


def parse_status_set(text: str, what: str = "--expect-status") -> frozenset[int]:
    """'200-399', '200,201,304' or '2xx,304' -> the set of statuses that count as a success.

    Statuses are 100-599 (RFC 9110 §15); a range is inclusive.  Anything else,
    including an empty list or a reversed range, is bad input: a typo here would
    silently turn every failure into a success.
    """
    codes: set[int] = set()
    items = [item.strip() for item in str(text).split(",")]
    for item in items:
        low = item.lower()
        if len(low) == 3 and low[0] in "12345" and low[1:] == "xx":   # 2xx: a whole class
            start = int(low[0]) * 100
            codes.update(range(start, start + 100))
            continue
        m = _STATUS_ITEM.match(item)
        if not m:
            raise ConfigError(f"{what}: {text!r} is not a status list "
                              "(examples: 200-399, 200,201,304, 2xx)")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        for code in (first, last):
            if not 100 <= code <= 599:
                raise ConfigError(f"{what}: {code} is not an HTTP status (100-599) in {text!r}")
        if last < first:
            raise ConfigError(f"{what}: the range {item!r} runs backwards in {text!r}")
        codes.update(range(first, last + 1))
    return frozenset(codes)


def format_status_set(codes: frozenset[int]) -> str:
    """The canonical text of a status set ('200-299', '200-201,304'): saved with the results."""
    parts, ordered = [], sorted(codes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def merge_headers(run: tuple[tuple[str, str], ...] | list[tuple[str, str]],
                  endpoint: tuple[tuple[str, str], ...] | list[tuple[str, str]]
                  ) -> list[tuple[str, str]]:
    """The user's headers for one endpoint: an endpoint's header replaces the run's of that name.

    Names compare case-insensitively (RFC 9110 §5.1).  Within one layer repeats are
    kept as given (list-valued fields may repeat); ``check_headers`` refuses the
    repeats that break a request (Host, Content-Length).
    """
    replaced = {name.lower() for name, _ in endpoint}
    return [*((n, v) for n, v in run if n.lower() not in replaced), *endpoint]


#: Fields a request may carry only once (RFC 9112 §3.2: two Hosts are answered 400).
_SINGLETONS = ("host", "content-length")


def check_headers(headers: list[tuple[str, str]], endpoint: str, body: bytes | None,
                  where: str = "--header") -> None:
    """Refuse user headers that would make the request something other than what was asked.

    loadgen frames every body itself with Content-Length: a user Content-Length
    that agrees is accepted (and sent once), one that disagrees would desync the
    connection, and Transfer-Encoding would contradict loadgen's framing.
    ``body`` None: the body is not known yet (a run's headers, before each endpoint's).
    """
    seen: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in _SINGLETONS and lower in seen:
            raise ConfigError(f"{where}: {name} given twice (a request carries one)")
        seen[lower] = value
        if lower == "transfer-encoding":
            raise ConfigError(f"{where}: Transfer-Encoding cannot be set: loadgen sends every "
                              "body whole, framed by Content-Length")
        if lower == "content-length" and body is not None and not (
                value.isascii() and value.isdigit() and int(value) == len(body)):
            raise ConfigError(f"{where}: 'Content-Length: {value}' does not match the "
                              f"{len(body)}-byte body of {endpoint} (leave it out: loadgen "
                              "sets it)")
        if lower == "host" and not value:
            raise ConfigError(f"{where}: Host is empty")


def asks_to_close(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> bool:
    """Whether a ``Connection`` header among ``headers`` has the ``close`` option.

    A request that says ``Connection: close`` must be the last on its connection
    (RFC 9112 §9.6), whatever the server answers: loadgen then opens a new
    connection for every such request, exactly as with ``--no-keepalive``.
    """
    return any(name.lower() == "connection"
               and "close" in (token.strip().lower() for token in value.split(","))
               for name, value in headers)


def check_keepalive(headers: list[tuple[str, str]], keepalive: bool, where: str) -> None:
    """``--no-keepalive`` sends ``Connection: close``; a user Connection header saying
    something else (``keep-alive``, ``Upgrade``) contradicts it: bad input."""
    given = [value for name, value in headers if name.lower() == "connection"]
    if not keepalive and given and not asks_to_close(headers):
        raise ConfigError(f"{where}: 'Connection: {given[0]}' contradicts --no-keepalive, "
                          "which sends 'Connection: close' (leave the header out)")


def parse_method(text: str) -> str:
    method = text.strip().upper()
    if not _TOKEN.match(method):
        raise ConfigError(f"--method: {text!r} is not an HTTP method")
    return method


@dataclass(frozen=True)
class Target:
    """Where the load goes: scheme, host, port and the URL's base path."""

    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"--url: {url!r} is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise ConfigError(f"--url: scheme must be http or https, got {url!r}")
        if not parts.hostname:
            raise ConfigError(f"--url: {url!r} has no host")
        if port == 0:
            raise ConfigError(f"--url: port 0 is not a valid target port in {url!r}")
        if "@" in parts.netloc:   # would be saved with the results: refuse rather than leak
            raise ConfigError("--url: credentials in the URL are not supported "
                              "(use --auth, or --header 'Authorization: ...')")
        if parts.query or parts.fragment or url.strip().endswith(("?", "#")):
            raise ConfigError("--url: a base URL cannot have a query or fragment (?...#...); "
                              "put it in --endpoint")
        default = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, port or default, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host_header}"


@dataclass(frozen=True)
class TlsFiles:
    """``--cacert``, ``--cert`` and ``--key``: absolute paths, or None for the defaults.

    Paths, not contents: each worker reads them when it builds its one SSLContext
    (loadgen.engine.tls), so a private key never travels through pickles or results.
    """

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def __bool__(self) -> bool:
        return bool(self.cacert or self.cert)


@dataclass(frozen=True)
class Proxy:
    """The HTTP proxy every request goes through (``--proxy``, or the environment's).

    Resolved once, in the coordinator (loadgen.config.proxy), and carried in every
    worker's plan: a worker process or cluster node never reads its own
    environment to decide where the load goes.  ``source`` says where it came
    from (``--proxy``, ``HTTPS_PROXY``...) so the report can say why.
    ``authorization`` is the Proxy-Authorization value made from the URL's
    ``user:password``: a secret, like the token in ``headers``, never saved
    (``public`` and ``url`` leave it out).
    """

    host: str
    port: int
    source: str
    authorization: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The proxy as a URL without credentials: what reports and results show."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def describe(self) -> str:
        return f"{self.url} (from {self.source})"

    def public(self) -> dict[str, object]:
        return {"url": self.url, "source": self.source, "credentials": bool(self.authorization)}


@dataclass(frozen=True)
class Endpoint:
    """One request blueprint; its ``name`` ("GET /path") keys every per-endpoint figure."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    weight: float = 1.0
    expect_status: frozenset[int] = DEFAULT_EXPECT_STATUS   # statuses that count as a success
    label: str = ""                 # the row's name when given (``name = "..."``)
    template_body: bool = False     # an inline body (``--data``, ``body``): may hold ``{{ }}``
    templates: Any = None           # config.template.RequestTemplates: None = static bytes
    rules: Any = None               # config.checks.ResponseRules: body checks; None = none

    @property
    def name(self) -> str:
        """The row's name: ``label`` if given, else ``METHOD path`` (the template as written)."""
        return self.label or f"{self.method} {self.path}"

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


def normalize_path(path: str, what: str = "--endpoint") -> str:
    """A request path: leading ``/``; non-ASCII characters percent-encoded as UTF-8.

    A ``#fragment`` is dropped: it names a part of the resource for the browser and
    is never part of a request target (RFC 9112 §3.2), so the endpoint's name is
    the path as sent.
    """
    given = path.strip()
    path = given.partition("#")[0]
    if not path:
        raise ConfigError(f"{what}: {given!r} has no path before its #fragment" if given
                          else f"{what}: empty path")
    if any(c.isspace() or c < " " or c == "\x7f" for c in path):
        raise ConfigError(f"{what}: {path!r} contains white space or control characters")
    if not path.isascii():
        try:
            path = quote(path, safe=_PATH_SAFE)
        except UnicodeEncodeError:   # undecodable bytes from the command line
            raise ConfigError(f"{what}: {path!r} is not valid text") from None
    return path if path.startswith("/") else "/" + path


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, validated.  ``headers`` may carry secrets: never saved."""

    url: str
    target: Target
    endpoints: tuple[Endpoint, ...]
    requests: int | None
    duration_s: float | None
    concurrency: int
    workers: int
    timeout_s: float
    insecure: bool = False
    auth: bool = False
    username: str = "user"
    login_endpoint: str = "/api/auth/login"
    token_field: str = "access_token"
    headers: tuple[tuple[str, str], ...] = ()
    schedule: Any = None                # engine.schedule.Schedule (open model); None = closed
    user_schedule: Any = None           # engine.population.UserSchedule: closed, ramping users
    max_connections: int = 0            # open model: connections may grow to this
    thresholds: tuple[Any, ...] = ()    # thresholds.Threshold, checked after the run
    cluster: str | None = None          # Dask scheduler address: run on its workers (nodes)
    workers_per_node: int | None = None  # with cluster: processes per node (default: its CPUs)
    tls: TlsFiles = TlsFiles()          # --cacert, --cert, --key
    keepalive: bool = True              # False: --no-keepalive, a new connection per request
    proxy: Proxy | None = None          # --proxy or HTTP(S)_PROXY, resolved for this target
    feeder: Any = None                  # config.feeder.Feeder: rows for ``{{ column }}``
    journeys: Any = None                # config.journey.Journeys: [[users]]; None = endpoints

    @property
    def model(self) -> str:
        return "closed" if self.schedule is None else "open"

    def public(self) -> dict[str, object]:
        """The config as saved in results: no password, token or header values."""
        return {
            "url": self.url,
            "endpoints": [e.name for e in self.endpoints],
            "requests": self.requests,
            "duration_s": self.duration_s,
            "concurrency": self.concurrency,
            "workers": self.workers,
            "timeout_s": self.timeout_s,
            "insecure": self.insecure,
            "auth": self.auth,
            "username": self.username if self.auth else None,
            "login_endpoint": self.login_endpoint if self.auth else None,
            "header_names": [name for name, _ in self.headers],
            "body_bytes": {e.name: len(e.body) for e in self.endpoints if e.body},
            "weights": {e.name: e.weight for e in self.endpoints},
            # what counted as a success, so a saved run's success rate can be read later
            "expect_status": {e.name: format_status_set(e.expect_status)
                              for e in self.endpoints},
            "thresholds": [t.text for t in self.thresholds],
            "model": self.model,
            "keepalive": self.keepalive,
            "max_connections": self.max_connections if self.schedule else None,
            "schedule": _describe_schedule(self.schedule),
            **({"user_stages": self.user_schedule.describe()}   # --user-stage runs only
               if self.user_schedule is not None else {}),
            **({"cluster": self.cluster} if self.cluster else {}),   # local runs: as before
            **({"tls": {"cacert": bool(self.tls.cacert), "client_certificate": bool(self.tls.cert)}}
               if self.tls else {}),   # whether, not where: paths say nothing about the run
            **({"proxy": self.proxy.public()} if self.proxy else {}),   # direct runs: as before
            **({"feeder": _describe_feeder(self.feeder)} if self.feeder is not None else {}),
            **({"journeys": _describe_journeys(self.journeys, self.endpoints),   # [[users]] runs
                "iterations": self.journeys.iterations} if self.journeys is not None else {}),
        }


def _describe_feeder(feeder: Any) -> dict[str, object]:
    """A feeder as saved: which file, which mode, how many rows; never a value."""
    return {"file": feeder.name, "mode": feeder.mode, "rows": len(feeder)}


def _describe_journeys(journeys: Any, endpoints: tuple[Endpoint, ...]) -> list[dict[str, object]]:
    """Each user kind as saved: its rows by name, think time, refresh statuses, feeder.

    Names, counts and numbers only: header values and feeder rows (tokens, passwords)
    never reach the document."""
    return [{"name": k.name, "weight": k.weight, "think_s": list(k.think),
             "on_start": [endpoints[i].name for i in k.on_start],
             "steps": [endpoints[i].name for i in k.steps],
             "refresh_on": sorted(k.refresh_on),
             "feeder": _describe_feeder(k.feeder) if k.feeder is not None else None}
            for k in journeys.kinds]


#: One stretch of a schedule as the results document records it (``config.schedule``):
#: a linear ramp; ``duration_s`` None = open-ended, until stopped.
StageDescription = dict[str, float | None]


class SendSchedule(Protocol):
    """What the worker and the report need of a schedule, and nothing more.

    Defined with the model that holds it (``RunConfig.schedule``, ``WorkerPlan``); built
    by ``engine.schedule``.

    ``time_of`` must be exact and pure (a function of ``k`` alone), so every
    worker and every node computes the same global stream without talking;
    ``describe`` is what the results document records of it, so the report and
    charts never reach into a schedule's internals (its stages).
    """

    def time_of(self, k: int) -> float | None:
        """Seconds after the start when global request ``k`` is due; None once past the end."""

    def describe(self) -> list[StageDescription]:
        """The rate profile as the results document's ``config.schedule``."""


def _describe_schedule(schedule: SendSchedule | None) -> list[StageDescription] | None:
    """The schedule as the document records it: its own ``describe()`` (engine.schedule's
    SendSchedule protocol), so this module never depends on how a schedule is built."""
    return None if schedule is None else schedule.describe()


def endpoint_cycle(weights: list[float], longest: int = 10_000) -> tuple[int, ...]:
    """The endpoint order that request indices cycle through: index ``i`` uses ``cycle[i % len]``.

    Smooth weighted round-robin (as nginx balances upstreams): each endpoint
    appears in proportion to its weight, spread out rather than in runs, so
    any stretch of requests (one worker's share, one second) keeps the mix.
    Weights become the smallest integers with the same ratios (within 0.1%).
    """
    smallest = min(weights)   # relative to the smallest, so no weight rounds down to zero
    fractions = [Fraction(w / smallest).limit_denominator(1000) for w in weights]
    scale = math.lcm(*(f.denominator for f in fractions))
    counts = [int(f * scale) for f in fractions]
    divisor = math.gcd(*counts)
    counts = [c // divisor for c in counts]
    if sum(counts) > longest:  # keep the table small; ratios stay within 1/longest
        total = sum(counts)
        counts = [max(1, round(c * longest / total)) for c in counts]
    current, total, cycle = [0] * len(counts), sum(counts), []
    for _ in range(total):
        for i, c in enumerate(counts):
            current[i] += c
        pick = max(range(len(counts)), key=current.__getitem__)
        current[pick] -= total
        cycle.append(pick)
    return tuple(cycle)


def split(total: int, parts: int) -> list[int]:
    """Divide ``total`` into ``parts`` integers that differ by at most one and sum exactly."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def users_of_worker(total: int, worker: int, workers: int) -> int:
    """How many of users ``0 .. total-1`` worker ``worker`` of ``workers`` owns: user u is
    worker ``u % workers``'s (``engine.population`` starts and stops them by that rule)."""
    return max(0, (total - worker + workers - 1) // workers)


@dataclass(frozen=True)
class WorkerPlan:
    """One worker process's share of the run; picklable for the spawn start method.

    ``first_ticket``/``tickets`` give the worker a contiguous range of global
    request indices; index ``i`` goes to endpoint ``cycle[i % len(cycle)]``, so
    endpoints get exact shares whatever the split across workers.
    """

    index: int
    target: Target
    endpoints: tuple[Endpoint, ...]
    connections: int
    first_ticket: int
    tickets: int | None
    duration_s: float | None
    timeout_s: float
    insecure: bool
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    schedule: Any = None            # open model: take global requests index, index+stride, ...
    user_schedule: Any = None       # closed model: users u with u % stride == index, over time
    stride: int = 1
    cycle: tuple[int, ...] = (0,)   # endpoint of request i: cycle[i % len(cycle)]
    requests_total: int | None = None
    max_connections: int = 0
    tls: TlsFiles = TlsFiles()
    keepalive: bool = True          # False: Connection: close, a new connection per request
    proxy: Proxy | None = None
    feeder: Any = None              # config.feeder.Feeder (picklable: one blob + offsets)
    user_offset: int = 0            # global index of this worker's first connection (``user``)
    journeys: Any = None            # config.journey.Journeys: tickets count iterations, not requests


def worker_connections(config: RunConfig) -> list[tuple[int, int]]:
    """Each worker's (connections, most connections): the split ``plan_workers`` makes.

    The open-file check needs it before the reachability check and the login,
    that is before the plans can be made (they carry the login's token).
    """
    n = config.workers
    users = config.user_schedule
    if users is not None:   # each user its own connection: those at the start, the most at once
        return [(users_of_worker(users.start_users, i, n), users_of_worker(users.peak, i, n))
                for i in range(n)]
    conns = split(config.concurrency, n)
    most = split(config.max_connections, n)
    return [(conns[i], max(conns[i], most[i])) for i in range(n)]


def plan_workers(config: RunConfig,
                 extra_headers: tuple[tuple[str, str], ...] = ()) -> list[WorkerPlan]:
    """Split requests and connections exactly across ``config.workers`` processes.

    Called once per run, after the login: ``extra_headers`` (the bearer token)
    reach the workers only through their plans, never the environment.
    """
    n = config.workers
    # with journeys a ticket is an iteration (--iterations), else a request (--requests)
    total = config.journeys.iterations if config.journeys is not None else config.requests
    tickets = split(total, n) if total is not None else [None] * n
    headers = (*config.headers, *extra_headers)
    plans, first, users = [], 0, 0
    cycle = endpoint_cycle([e.weight for e in config.endpoints])
    for i, (connections, most) in enumerate(worker_connections(config)):
        plans.append(WorkerPlan(
            index=i, target=config.target, endpoints=config.endpoints, connections=connections,
            first_ticket=first, tickets=tickets[i], duration_s=config.duration_s,
            timeout_s=config.timeout_s, insecure=config.insecure, headers=headers,
            schedule=config.schedule, user_schedule=config.user_schedule, stride=n, cycle=cycle,
            requests_total=total, max_connections=most, tls=config.tls,
            proxy=config.proxy, keepalive=config.keepalive, feeder=config.feeder,
            user_offset=users, journeys=config.journeys))
        first += tickets[i] or 0
        users += most   # the virtual users' global indices: worker by worker
    return plans
