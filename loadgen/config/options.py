"""From Click's option values (and a scenario file) to a validated RunConfig.

Kept apart from the Click declarations so that ``run``, ``capacity`` and
``demo`` build their configs the same way.  Every problem is a ConfigError
carrying the one line the CLI prints before exiting with status 2.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NoReturn

from loadgen.config.guards import ask_password, check_outputs, read_body_file
from loadgen.config.model import (
    DEFAULT_EXPECT_STATUS,
    ConfigError,
    Endpoint,
    RunConfig,
    Target,
    TlsFiles,
    asks_to_close,
    check_headers,
    check_keepalive,
    merge_headers,
    normalize_path,
    parse_duration,
    parse_header,
    parse_method,
    parse_status_set,
)
from loadgen.config.proxy import resolve_proxy

DEFAULT_REQUESTS = 100
DEFAULT_CONCURRENCY = 10
MAX_WORKERS = 256            # worker processes on one machine; more is a typo, not a plan
MIN_TIMEOUT_S = 0.001
CLUSTER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")   # Dask's network protocols


@dataclass(frozen=True)
class Outputs:
    """Where a run's results go, decided once from ``--save``, ``--visualize``,
    ``--output-image`` and ``--quiet`` (the commands never see Click's values)."""

    save: str | None = None
    visualize: bool = False
    image: str | None = None
    quiet: bool = False

    @property
    def charts(self) -> bool:
        """``--output-image`` alone asks for the chart too."""
        return self.visualize or bool(self.image)


@dataclass(frozen=True)
class Credentials:
    """The ``--auth`` login's user and password.

    Kept out of ``RunConfig`` on purpose: the config is pickled to workers and
    written into results, the password must reach neither.  It is hidden from
    ``repr`` (tracebacks, logs) and refuses to be pickled.
    """

    username: str
    password: str = field(repr=False)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Credentials are never pickled: workers get the token, not the password")


@dataclass(frozen=True)
class CapacitySettings:
    """``loadgen capacity``'s search: first rate, ceiling, bracket width, step length, SLOs."""

    start_rate: float
    max_rate: float
    precision: float
    step_s: float
    slos: tuple[str, ...]


def outputs(opts: dict[str, Any]) -> Outputs:
    """The output options of ``run``/``capacity`` (checked by ``build_config``)."""
    return Outputs(save=opts.get("save"), visualize=bool(opts.get("visualize")),
                   image=opts.get("output_image"), quiet=bool(opts.get("quiet")))


def credentials(opts: dict[str, Any]) -> Credentials:
    """The login's credentials; prompts for ``--ask-password`` (see ``resolve_password``)."""
    return Credentials(opts["username"], resolve_password(opts))


def capacity_settings(opts: dict[str, Any]) -> CapacitySettings:
    """``capacity``'s own options, validated; raises ConfigError with the line to show."""
    from loadgen.engine.schedule import MAX_RATE

    step_s = parse_duration(opts["step_duration"], "--step-duration")
    if opts["start_rate"] > opts["max_rate"]:
        raise ConfigError("--start-rate is above --max-rate")
    if not opts["max_rate"] <= MAX_RATE:   # also inf and nan: every step must be buildable
        raise ConfigError(f"--max-rate: at most {MAX_RATE:,.0f}")
    return CapacitySettings(start_rate=opts["start_rate"], max_rate=opts["max_rate"],
                            precision=opts["precision"], step_s=step_s,
                            slos=tuple(opts["slos"]))


def merge_scenario(opts: dict[str, Any], from_file: dict[str, Any],
                   typed: set[str]) -> dict[str, Any]:
    """Options the user typed win; the file fills the rest; Click's defaults come last."""
    merged = dict(opts)
    for key, value in from_file.items():
        if key not in typed:
            merged[key] = value
    if "endpoints" in typed:      # endpoints typed on the command line replace the file's
        merged.pop("endpoint_specs", None)
    return merged


def build_config(opts: dict[str, Any]) -> RunConfig:
    """Validate every option; raises ConfigError with the line to show."""
    target = Target.parse(opts["url"])
    check_outputs(opts.get("save"), opts.get("output_image"))   # before the run, not after it
    duration = parse_duration(opts["duration"], "--duration") if opts.get("duration") else None
    requests = opts.get("requests")
    users = _user_schedule(opts)
    schedule = _schedule(opts, requests, duration)
    if users is not None:   # the stages end the run; --duration may end it sooner
        duration = min(duration or users.duration_s, users.duration_s)
    if requests is None and duration is None and schedule is None:
        requests = DEFAULT_REQUESTS
    endpoints = _endpoints(opts)
    headers = tuple(parse_header(h) for h in opts["headers"])
    _check_headers(headers, endpoints)
    keepalive = _keepalive(opts, headers, endpoints)
    concurrency = (users.peak if users is not None
                   else opts.get("concurrency") or DEFAULT_CONCURRENCY)
    if (opts["workers"] or 0) > MAX_WORKERS:
        raise ConfigError(f"--workers: at most {MAX_WORKERS} processes on one machine")
    workers = opts["workers"] or os.cpu_count() or 1
    workers = min(workers, concurrency, requests or workers)
    cluster, per_node = _cluster(opts)
    if cluster:
        workers = 0   # known once the cluster's nodes are (loadgen.engine.cluster.run.Cluster.connect)
    if opts["auth"] and not opts["password"]:
        raise ConfigError("--auth needs a password (--password or LOADGEN_PASSWORD)")
    thresholds = _thresholds(opts.get("thresholds") or (), endpoints)
    tls = tls_files(opts)
    proxy = resolve_proxy(target, opts.get("proxy"), bool(opts.get("no_proxy")), os.environ)
    return RunConfig(
        url=opts["url"], target=target, endpoints=endpoints, requests=requests,
        duration_s=duration, concurrency=concurrency, workers=workers,
        timeout_s=_timeout(opts["timeout"]), insecure=opts["insecure"],
        auth=opts["auth"], username=opts["username"],
        login_endpoint=normalize_path(opts["login_endpoint"], "--login-endpoint"),
        token_field=opts["token_field"],
        headers=headers, schedule=schedule, user_schedule=users,
        max_connections=max(concurrency, opts.get("max_connections") or 0),
        thresholds=thresholds, cluster=cluster, workers_per_node=per_node, tls=tls,
        proxy=proxy, keepalive=keepalive)


def tls_files(opts: dict[str, Any]) -> TlsFiles:
    """``--cacert``, ``--cert``, ``--key``, checked now by building the context they make.

    The workers build theirs from the same files; any problem with one (unreadable,
    not PEM, a key that does not match) is bad input here, before any load.
    """
    names: dict[str, str | None] = {}
    for key in ("cacert", "cert", "key"):
        value = opts.get(key)
        if value is not None and not value.strip():
            raise ConfigError(f"--{key}: empty file name")
        names[key] = os.path.abspath(os.path.expanduser(value)) if value else None
    files = TlsFiles(**names)
    if files or files.key:
        from loadgen.engine.tls import build_context  # ssl: not needed by plain-http runs

        build_context(files, bool(opts.get("insecure")))
    return files


def _cluster(opts: dict[str, Any]) -> tuple[str | None, int | None]:
    """``--cluster`` and ``--workers-per-node``; the address itself is checked by connecting."""
    address, per_node = opts.get("cluster"), opts.get("workers_per_node")
    if address is None:
        if per_node is not None:
            raise ConfigError("--workers-per-node needs --cluster")
        return None, None
    address = address.strip()
    scheme = address.partition("://")[0] if "://" in address else "tcp"
    if not address or any(c.isspace() for c in address) or scheme not in CLUSTER_SCHEMES:
        raise ConfigError(f"--cluster: {opts['cluster']!r} is not a Dask scheduler address "
                          "(example: tcp://10.0.0.5:8786)")
    if opts.get("workers"):
        raise ConfigError("--workers counts processes on this machine; with --cluster, "
                          "use --workers-per-node")
    return address, per_node


def _endpoints(opts: dict[str, Any]) -> tuple[Endpoint, ...]:
    expect = _expect_status(opts.get("expect_status"))
    specs = opts.get("endpoint_specs")
    if specs:   # an endpoint's own expect_status is more specific than the run's
        return tuple(Endpoint(s["method"], s["path"], s["body"], tuple(s["headers"]),
                              float(s["weight"]), s.get("expect_status") or expect)
                     for s in specs)
    body = _read_body(opts.get("data"), opts.get("data_file"))
    method = (parse_method(opts["method"]) if opts.get("method") is not None
              else "POST" if body else "GET")
    paths = dict.fromkeys(normalize_path(p) for p in opts["endpoints"])
    if not paths:
        raise ConfigError("--endpoint: no endpoint to test")
    return tuple(Endpoint(method, path, body, expect_status=expect) for path in paths)


def _expect_status(text: str | None) -> frozenset[int]:
    """``--expect-status`` (or the scenario's top-level expect_status); default 2xx."""
    return DEFAULT_EXPECT_STATUS if text is None else parse_status_set(text)


def _check_headers(headers: tuple[tuple[str, str], ...],
                   endpoints: tuple[Endpoint, ...]) -> None:
    """Every endpoint's headers as they will be sent (run's, then its own) must be sendable."""
    check_headers(list(headers), "", None, "--header")
    for e in endpoints:
        own = {name.lower() for name, _ in e.headers}
        where = f"headers of {e.name}" if "content-length" in own else "--header"
        check_headers(list(e.headers), e.name, None, f"headers of {e.name}")
        check_headers(merge_headers(headers, e.headers), e.name, e.body, where)


def _keepalive(opts: dict[str, Any], headers: tuple[tuple[str, str], ...],
               endpoints: tuple[Endpoint, ...]) -> bool:
    """False for ``--no-keepalive``, and when every request carries ``Connection: close``
    (a user header): either way each request gets a new connection, and the results say so.

    A request that asks to close is the last on its connection whatever the server
    does (RFC 9112 §9.6), so the two are one setting; with ``--no-keepalive``, a
    Connection header that says anything else is bad input.
    """
    keepalive = not opts.get("no_keepalive")
    sent = [merge_headers(headers, e.headers) for e in endpoints]
    for e, given in zip(endpoints, sent):
        own = any(name.lower() == "connection" for name, _ in e.headers)
        check_keepalive(given, keepalive, f"headers of {e.name}" if own else "--header")
    return keepalive and not all(asks_to_close(given) for given in sent)


def _thresholds(texts: Any, endpoints: tuple[Endpoint, ...]) -> tuple[Any, ...]:
    """Parsed now, so a typo is bad input before any load, not a failure after it."""
    if not texts:
        return ()
    from loadgen.stats.thresholds import check_endpoints, parse_thresholds

    parsed = tuple(parse_thresholds(texts))
    check_endpoints(parsed, [e.name for e in endpoints])
    return parsed


def _schedule(opts: dict[str, Any], requests: int | None, duration: float | None) -> Any:
    """The open model's send schedule, or None for the closed model."""
    from loadgen.engine.schedule import build_schedule, parse_stage

    stages = [parse_stage(text) for text in opts.get("stages") or ()]
    rate = opts.get("rate")
    if rate is None and not stages:
        if opts.get("max_connections") is not None:
            raise ConfigError("--max-connections needs --rate or --stage (the open model)")
        return None
    if not stages and requests is None and duration is None:
        raise ConfigError("--rate needs --duration or --requests to end the run")
    return build_schedule(rate, stages, duration)


def _user_schedule(opts: dict[str, Any]) -> Any:
    """``--user-stage``: the closed model's users over time, or None for a constant count.

    The first stage ramps from ``--concurrency`` when it was given (on the command
    line or in a scenario file), else from 0.
    """
    texts = opts.get("user_stages") or ()
    if not texts:
        return None
    if opts.get("rate") is not None or opts.get("stages"):
        raise ConfigError("--user-stage ramps users (closed model): it cannot be combined "
                          "with --rate or --stage (open model)")
    from loadgen.engine.population import build_user_schedule, parse_user_stage

    stages = [parse_user_stage(text) for text in texts]
    return build_user_schedule(opts.get("concurrency") or 0, stages)


def _read_body(data: str | None, data_file: str | None) -> bytes:
    if data is not None and data_file is not None:
        raise ConfigError("--data and --data-file cannot be used together")
    if data_file is None:   # surrogateescape: bytes that are not UTF-8 are sent as typed
        return (data or "").encode("utf-8", "surrogateescape")
    return read_body_file(data_file, "--data-file")


def _timeout(text: str) -> float:
    seconds = parse_duration(text, "--timeout")
    if seconds < MIN_TIMEOUT_S:
        raise ConfigError(f"--timeout: {text!r} is shorter than 1ms")
    return seconds


def resolve_password(opts: dict[str, Any]) -> str:
    """The password for --auth: --ask-password's prompt, else --password / LOADGEN_PASSWORD.

    Called after the rest of the input is valid, so a typo is reported before the
    prompt.  LOADGEN_PASSWORD is then dropped from the environment: the worker
    processes need the token, never the password.
    """
    os.environ.pop("LOADGEN_PASSWORD", None)
    if not opts.get("ask_password"):
        return opts["password"]
    if not opts["auth"]:
        raise ConfigError("--ask-password needs --auth")
    return ask_password()
