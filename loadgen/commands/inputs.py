"""From Click's option values (over a scenario file's typed values) to a validated RunConfig.

Here, under ``commands``, not in ``config``: building the run's schedule, its
thresholds and its TLS context needs ``engine`` and ``stats``, and ``config``
holds only what the user asked for (standard library, ``errors``, ``jmespath``).

Kept apart from the Click declarations so that ``run``, ``capacity`` and
``demo`` build their configs the same way: ``cli.py`` collects the options
and calls ``run_inputs`` or ``capacity_inputs``.  A scenario file arrives
already typed (``config.settings.Settings``); an option typed on the command
line wins over it, and only Click's own strings are parsed here.  Every
problem is a ConfigError carrying the one line the CLI prints before exiting
with status 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from loadgen.config.guards import ask_password, read_body_file
from loadgen.config.journey import Journeys
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
    parse_timeout,
)
from loadgen.config.proxy import proxy_option, resolve_proxy
from loadgen.config.settings import EndpointSpec, Settings, UserSpec
from loadgen.config.stages import MAX_RATE, parse_stage, parse_user_stage
from loadgen.config.templated import load_feeder, template_endpoints, templated_path
from loadgen.config.users import build_journeys
from loadgen.output.paths import check_csv_prefix, check_output, check_outputs

DEFAULT_REQUESTS = 100
DEFAULT_ITERATIONS = 100     # a journey run without --iterations, --duration or a schedule
DEFAULT_CONCURRENCY = 10
MAX_WORKERS = 256            # worker processes on one machine; more is a typo, not a plan
CLUSTER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")   # Dask's network protocols


@dataclass(frozen=True)
class Outputs:
    """Where a run's results go, decided once from ``--save``, ``--visualize``,
    ``--output-image`` and ``--quiet`` (the commands never see Click's values);
    ``--monitor-pid`` / ``--monitor-url``: the server's resources to sample beside them
    (``engine.monitor`` checks them before any load)."""

    save: str | None = None
    visualize: bool = False
    image: str | None = None
    quiet: bool = False
    metrics_port: int | None = None      # --metrics-port: serve Prometheus metrics (0: any port)
    metrics_host: str = "127.0.0.1"      # --metrics-host: where that endpoint listens
    html: str | None = None     # --html FILE: the self-contained HTML report
    monitor_pid: int | None = None
    monitor_url: str | None = None
    csv: str | None = None       # --csv PREFIX: PREFIX_stats.csv and PREFIX_intervals.csv
    junit: str | None = None     # --junit FILE: JUnit XML of the thresholds and checks

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


class _Layers:
    """Click's values laid over a typed layer (a scenario file's ``Settings``).

    An option given on the command line (or by its environment variable) wins;
    else the layer's value, when it sets one; else Click's default.  Values from
    the layer are already typed; Click's go through the same parser as always.
    """

    def __init__(self, opts: Mapping[str, Any], below: Settings | None,
                 typed: Collection[str]) -> None:
        self.opts = opts
        self.below = below or Settings()
        self.typed = frozenset(typed)

    def get(self, name: str, parse: Callable[[Any], Any] | None = None) -> Any:
        """Option ``name``'s value: the layer's, else Click's through ``parse`` (None stays None)."""
        if name not in self.typed:
            value = getattr(self.below, name, None)
            if value is not None:
                return value
        raw = self.opts.get(name)
        return raw if raw is None or parse is None else parse(raw)

    def endpoint_specs(self) -> tuple[EndpointSpec, ...] | None:
        """The layer's [[endpoints]] tables, unless ``--endpoint`` was typed: it replaces them."""
        return None if "endpoints" in self.typed else self.below.endpoint_specs


def run_inputs(opts: Mapping[str, Any], below: Settings | None = None,
               typed: Collection[str] = ()) -> tuple[RunConfig, Credentials, Outputs]:
    """``loadgen run``'s config, login and outputs from Click's ``opts`` over ``below``.

    ``typed``: the options given on the command line (or their environment
    variable), which win over ``below``.  The password is asked for last, so a
    typo anywhere else is reported before a prompt.
    """
    given = _Layers(opts, below, typed)
    config = _build(given)
    return config, _credentials(given), _outputs(given)


def capacity_inputs(opts: Mapping[str, Any]
                    ) -> tuple[CapacitySettings, RunConfig, Credentials, Outputs]:
    """``loadgen capacity``'s search settings and the config of its first step.

    The step is a constant rate (``--start-rate``) for ``--step-duration`` with
    the SLOs as thresholds; ``commands.capacity.step_config`` derives the others.
    """
    settings = capacity_settings(opts)
    step = Settings(rate=settings.start_rate, duration=settings.step_s, thresholds=settings.slos)
    given = _Layers(opts, step, ())
    config = _build(given)
    return settings, config, _credentials(given), _outputs(given)


def outputs(opts: Mapping[str, Any]) -> Outputs:
    """The output options of ``run``/``capacity`` (checked by ``build_config``)."""
    return _outputs(_Layers(opts, None, ()))


def _outputs(given: _Layers) -> Outputs:
    port, host = given.get("metrics_port"), given.get("metrics_host")
    if host is not None and port is None:
        raise ConfigError("--metrics-host needs --metrics-port")
    if host is not None and not host.strip():
        raise ConfigError("--metrics-host: empty host")
    return Outputs(save=given.get("save"), visualize=bool(given.get("visualize")),
                   image=given.get("output_image"), quiet=bool(given.get("quiet")),
                   metrics_port=port, metrics_host=host.strip() if host else "127.0.0.1",
                   html=given.get("html"),
                   monitor_pid=given.get("monitor_pid"), monitor_url=given.get("monitor_url"),
                   csv=given.get("csv"), junit=given.get("junit"))


def _credentials(given: _Layers) -> Credentials:
    """The login's credentials; prompts for ``--ask-password`` (see ``_password``)."""
    return Credentials(given.get("username"), _password(given))


def capacity_settings(opts: Mapping[str, Any]) -> CapacitySettings:
    """``capacity``'s own options, validated; raises ConfigError with the line to show."""
    step_s = parse_duration(opts["step_duration"], "--step-duration")
    if opts["start_rate"] > opts["max_rate"]:
        raise ConfigError("--start-rate is above --max-rate")
    if not opts["max_rate"] <= MAX_RATE:   # also inf and nan: every step must be buildable
        raise ConfigError(f"--max-rate: at most {MAX_RATE:,.0f}")
    return CapacitySettings(start_rate=opts["start_rate"], max_rate=opts["max_rate"],
                            precision=opts["precision"], step_s=step_s,
                            slos=tuple(opts["slos"]))


def build_config(opts: Mapping[str, Any], below: Settings | None = None,
                 typed: Collection[str] = ()) -> RunConfig:
    """Validate every option, Click's ``opts`` over ``below`` (see ``run_inputs``);
    raises ConfigError with the line to show."""
    return _build(_Layers(opts, below, typed))


def _build(given: _Layers) -> RunConfig:
    url = given.get("url")
    target = Target.parse(url)
    save, image = given.get("save"), given.get("output_image")
    check_outputs(save, image)   # before the run, not after it
    check_output(given.get("html"), "--html", stdout_ok=False)
    check_csv_prefix(given.get("csv"))
    check_output(given.get("junit"), "--junit", stdout_ok=False)
    duration = given.get("duration", lambda text: parse_duration(text, "--duration") if text
                         else None)
    requests = given.get("requests")
    kinds = _journey_kinds(given)
    iterations = given.get("iterations") if kinds else None
    users = _user_schedule(given)
    # a journey run's tickets are iterations (--iterations), an endpoint run's requests
    schedule = _schedule(given, iterations if kinds else requests, duration, bool(kinds))
    if users is not None:   # the stages end the run; --duration may end it sooner
        duration = min(duration or users.duration_s, users.duration_s)
    if (iterations if kinds else requests) is None and duration is None and schedule is None:
        if kinds:
            iterations = DEFAULT_ITERATIONS
        else:
            requests = DEFAULT_REQUESTS
    headers = given.get("headers", lambda texts: tuple(parse_header(h) for h in texts)) or ()
    feeder = load_feeder(given.get("feeder"), given.get("feeder_mode"), given.get("cluster"))
    journeys = None
    if kinds:   # the top-level feeder is the default of the kinds without their own data
        endpoints, journeys = build_journeys(kinds, headers, _expect_status(given), feeder,
                                             given.get("cluster"), iterations)
        _check_headers(headers, endpoints)
        feeder = None
    else:
        endpoints = _endpoints(given)
        _check_headers(headers, endpoints)
        endpoints = template_endpoints(endpoints, headers, feeder,
                                       cli=given.endpoint_specs() is None)
    keepalive = _keepalive(bool(given.get("no_keepalive")), headers, endpoints)
    concurrency = (users.peak if users is not None
                   else given.get("concurrency") or DEFAULT_CONCURRENCY)
    workers = given.get("workers")
    if (workers or 0) > MAX_WORKERS:
        raise ConfigError(f"--workers: at most {MAX_WORKERS} processes on one machine")
    workers = workers or os.cpu_count() or 1
    workers = min(workers, concurrency, (iterations if kinds else requests) or workers)
    max_connections = max(concurrency, given.get("max_connections") or 0)
    if journeys is not None:
        workers = _journey_workers(journeys, workers, concurrency, max_connections,
                                   schedule is not None)
    cluster, per_node = _cluster(given)
    if cluster:
        workers = 0   # known once the cluster's nodes are (loadgen.engine.cluster.run.Cluster.connect)
    auth = given.get("auth")
    if auth and not given.get("password"):
        raise ConfigError("--auth needs a password (--password or LOADGEN_PASSWORD)")
    thresholds = _thresholds(given.get("thresholds") or (), endpoints)
    insecure = given.get("insecure")
    tls = tls_files(given.get("cacert"), given.get("cert"), given.get("key"), bool(insecure))
    proxy = resolve_proxy(target, given.get("proxy", proxy_option), bool(given.get("no_proxy")),
                          os.environ)
    return RunConfig(
        url=url, target=target, endpoints=endpoints, requests=requests,
        duration_s=duration, concurrency=concurrency, workers=workers,
        timeout_s=given.get("timeout", parse_timeout), insecure=insecure,
        auth=auth, username=given.get("username"),
        login_endpoint=given.get("login_endpoint",
                                 lambda text: normalize_path(text, "--login-endpoint")),
        token_field=given.get("token_field"),
        headers=headers, schedule=schedule, user_schedule=users,
        max_connections=max_connections,
        thresholds=thresholds, cluster=cluster, workers_per_node=per_node, tls=tls,
        proxy=proxy, keepalive=keepalive, feeder=feeder, journeys=journeys)


def tls_files(cacert: str | None, cert: str | None, key: str | None,
              insecure: bool) -> TlsFiles:
    """``--cacert``, ``--cert``, ``--key``, checked now by building the context they make.

    The workers build theirs from the same files; any problem with one (unreadable,
    not PEM, a key that does not match) is bad input here, before any load.
    """
    names: dict[str, str | None] = {}
    for option, value in (("cacert", cacert), ("cert", cert), ("key", key)):
        if value is not None and not value.strip():
            raise ConfigError(f"--{option}: empty file name")
        names[option] = os.path.abspath(os.path.expanduser(value)) if value else None
    files = TlsFiles(**names)
    if files or files.key:
        from loadgen.engine.tls import build_context  # ssl: not needed by plain-http runs

        build_context(files, insecure)
    return files


def _cluster(given: _Layers) -> tuple[str | None, int | None]:
    """``--cluster`` and ``--workers-per-node``; the address itself is checked by connecting."""
    given_address = address = given.get("cluster")
    per_node = given.get("workers_per_node")
    if address is None:
        if per_node is not None:
            raise ConfigError("--workers-per-node needs --cluster")
        return None, None
    address = address.strip()
    scheme = address.partition("://")[0] if "://" in address else "tcp"
    if not address or any(c.isspace() for c in address) or scheme not in CLUSTER_SCHEMES:
        raise ConfigError(f"--cluster: {given_address!r} is not a Dask scheduler address "
                          "(example: tcp://10.0.0.5:8786)")
    if given.get("workers"):
        raise ConfigError("--workers counts processes on this machine; with --cluster, "
                          "use --workers-per-node")
    return address, per_node


def _expect_status(given: _Layers) -> frozenset[int]:
    """--expect-status (or the scenario's top-level expect_status); default 2xx."""
    return given.get("expect_status", parse_status_set) or DEFAULT_EXPECT_STATUS


def _journey_kinds(given: _Layers) -> tuple[UserSpec, ...] | None:
    """The scenario's ``[[users]]``, or None; refuses the options that say what to request
    for plain endpoints (the file's own keys were refused by ``config.scenario``)."""
    kinds = given.below.users
    if not kinds:
        if given.get("iterations") is not None:
            raise ConfigError("--iterations counts journey iterations: it needs [[users]] in "
                              "the scenario file (--config); for endpoints, use --requests")
        return None
    source = kinds[0].source
    if "endpoints" in given.typed:
        raise ConfigError(f"--endpoint cannot be combined with the [[users]] of {source}: a "
                          "journey's steps say what to request")
    if "requests" in given.typed:
        raise ConfigError("--requests counts requests; a journey run ([[users]] in "
                          f"{source}) counts iterations: use --iterations")
    for name, option in (("method", "--method"), ("data", "--data"),
                         ("data_file", "--data-file")):
        if name in given.typed:
            raise ConfigError(f"{option} applies to plain endpoints; with the [[users]] of "
                              f"{source}, set it in each step")
    return kinds


def _journey_workers(journeys: Journeys, workers: int, concurrency: int,
                     max_connections: int, open_model: bool) -> int:
    """The worker processes a journey run can use, every kind of user getting its share.

    Closed model: user ``u`` is of kind ``journeys.kind_of(u)``; a kind that none of the
    ``--concurrency`` users is would send nothing at all, so that is refused.  Open model:
    each worker keeps a pool of users of every kind, at most its share of
    ``--max-connections``; a worker whose share cannot hold one user of each kind could
    leave an arrival of some kind waiting for ever, so fewer workers are used.
    """
    kinds = journeys.kinds
    if open_model:
        if max_connections < len(kinds):
            raise ConfigError(f"--max-connections {max_connections} cannot hold one virtual "
                              f"user of each of the {len(kinds)} [[users]] kinds: give at "
                              f"least {len(kinds)}")
        return min(workers, max_connections // len(kinds))
    first: dict[int, int] = {}   # kind -> the first user of that kind
    for position, kind in enumerate(journeys.cycle):
        first.setdefault(kind, position)
    needed = max(first.values()) + 1
    if concurrency < needed:
        missing = kinds[min(first, key=lambda k: (first[k] < concurrency, first[k]))]
        raise ConfigError(f"[[users]] {missing.name!r} gets none of the {concurrency} "
                          f"virtual users (users take the kinds in their weights' order): "
                          f"give --concurrency at least {needed}")
    return workers


def _endpoints(given: _Layers) -> tuple[Endpoint, ...]:
    expect = _expect_status(given)
    specs = given.endpoint_specs()
    if specs:   # an endpoint's own expect_status is more specific than the run's
        return tuple(s.endpoint(expect) for s in specs)
    data = given.get("data")
    body = _read_body(data, given.get("data_file"))
    method = given.get("method", parse_method) or ("POST" if body else "GET")
    paths = dict.fromkeys(given.get("endpoints", lambda texts: tuple(
        templated_path(p, "--endpoint") or normalize_path(p) for p in texts)) or ())
    if not paths:
        raise ConfigError("--endpoint: no endpoint to test")
    return tuple(Endpoint(method, path, body, expect_status=expect,
                          template_body=data is not None and "{{" in data) for path in paths)


def _check_headers(headers: tuple[tuple[str, str], ...],
                   endpoints: tuple[Endpoint, ...]) -> None:
    """Every endpoint's headers as they will be sent (run's, then its own) must be sendable."""
    check_headers(list(headers), "", None, "--header")
    for e in endpoints:
        own = {name.lower() for name, _ in e.headers}
        where = f"headers of {e.name}" if "content-length" in own else "--header"
        check_headers(list(e.headers), e.name, None, f"headers of {e.name}")
        body = None if e.template_body and b"{{" in e.body else e.body   # known per request
        check_headers(merge_headers(headers, e.headers), e.name, body, where)


def _keepalive(no_keepalive: bool, headers: tuple[tuple[str, str], ...],
               endpoints: tuple[Endpoint, ...]) -> bool:
    """False for ``--no-keepalive``, and when every request carries ``Connection: close``
    (a user header): either way each request gets a new connection, and the results say so.

    A request that asks to close is the last on its connection whatever the server
    does (RFC 9112 §9.6), so the two are one setting; with ``--no-keepalive``, a
    Connection header that says anything else is bad input.
    """
    keepalive = not no_keepalive
    sent = [merge_headers(headers, e.headers) for e in endpoints]
    for e, given in zip(endpoints, sent):
        own = any(name.lower() == "connection" for name, _ in e.headers)
        check_keepalive(given, keepalive, f"headers of {e.name}" if own else "--header")
    return keepalive and not all(asks_to_close(given) for given in sent)


def _thresholds(texts: Any, endpoints: tuple[Endpoint, ...]) -> tuple[Any, ...]:
    """Parsed now, so a typo is bad input before any load, not a failure after it."""
    if not texts:
        return ()
    from loadgen.stats.thresholds import check_endpoints, parse_thresholds  # start-up: when used

    parsed = tuple(parse_thresholds(texts))
    check_endpoints(parsed, [e.name for e in endpoints])
    return parsed


def _schedule(given: _Layers, requests: int | None, duration: float | None,
              journeys: bool = False) -> Any:
    """The open model's send schedule, or None for the closed model.

    ``requests``: what bounds the run's count (``--iterations`` for ``journeys``)."""
    stages = list(given.get("stages", lambda texts: [parse_stage(t) for t in texts]) or ())
    rate = given.get("rate")
    if rate is None and not stages:
        if given.get("max_connections") is not None:
            raise ConfigError("--max-connections needs --rate or --stage (the open model)")
        return None
    if not stages and requests is None and duration is None:
        raise ConfigError("--rate needs --duration or "
                          f"{'--iterations' if journeys else '--requests'} to end the run")
    from loadgen.engine.schedule import build_schedule  # start-up: the open model only

    return build_schedule(rate, stages, duration)


def _user_schedule(given: _Layers) -> Any:
    """``--user-stage``: the closed model's users over time, or None for a constant count.

    The first stage ramps from ``--concurrency`` when it was given (on the command
    line or in a scenario file), else from 0.
    """
    stages = list(given.get("user_stages",
                            lambda texts: [parse_user_stage(t) for t in texts]) or ())
    if not stages:
        return None
    if given.get("rate") is not None or given.get("stages"):
        raise ConfigError("--user-stage ramps users (closed model): it cannot be combined "
                          "with --rate or --stage (open model)")
    from loadgen.engine.population import build_user_schedule  # start-up: ramps only

    return build_user_schedule(given.get("concurrency") or 0, stages)


def _read_body(data: str | None, data_file: str | None) -> bytes:
    if data is not None and data_file is not None:
        raise ConfigError("--data and --data-file cannot be used together")
    if data_file is None:   # surrogateescape: bytes that are not UTF-8 are sent as typed
        return (data or "").encode("utf-8", "surrogateescape")
    return read_body_file(data_file, "--data-file")


def _password(given: _Layers) -> str:
    """The password for --auth: --ask-password's prompt, else --password / LOADGEN_PASSWORD
    (or the scenario's [auth] password).

    Called after the rest of the input is valid, so a typo is reported before the
    prompt.  LOADGEN_PASSWORD is then dropped from the environment: the worker
    processes need the token, never the password.
    """
    os.environ.pop("LOADGEN_PASSWORD", None)
    if not given.get("ask_password"):
        return given.get("password")
    if not given.get("auth"):
        raise ConfigError("--ask-password needs --auth")
    return ask_password()
