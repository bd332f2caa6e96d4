"""The Click command line: turns options into a RunConfig and renders the outcome.

No load logic lives here.  Every user mistake ends as one line on stderr and
exit status 2; a run that broke exits 3 with partial results still saved.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from loadgen import __version__
from loadgen.config import (ConfigError, Endpoint, RunConfig, Target, normalize_path,
                            parse_duration, parse_header, parse_method)

EXIT_OK, EXIT_THRESHOLD, EXIT_INPUT, EXIT_BROKEN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_REQUESTS = 100


def fail(message: str, status: int = EXIT_INPUT) -> NoReturn:
    click.echo(f"loadgen: {message}", err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loadgen")
def cli() -> None:
    """loadgen: multiprocess HTTP load generator with exact HDR percentiles."""


@cli.command()
@click.option("--url", default="http://localhost:5000", show_default=True,
              help="Base URL of the API.")
@click.option("--endpoint", "endpoints", multiple=True, default=["/api/health"],
              show_default=True, help="Path to test; repeat for several (requests are spread evenly).")
@click.option("--requests", type=click.IntRange(min=1), default=None,
              help=f"Total requests across all workers [default: {DEFAULT_REQUESTS}, "
                   "or unlimited with --duration].")
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True,
              help="Total connections across all workers.")
@click.option("--auth", is_flag=True, help="Log in first and send the JWT as a Bearer token.")
@click.option("--username", default="user", show_default=True)
@click.option("--password", default="user123", envvar="LOADGEN_PASSWORD", show_default=True,
              help="Password for --auth (or set LOADGEN_PASSWORD).")
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the results as JSON to this file.")
@click.option("--visualize", is_flag=True, help="Draw the charts (PNG).")
@click.option("--output-image", type=click.Path(dir_okay=False), default=None,
              help="Where --visualize writes its PNG.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: CPU count, at most the concurrency].")
@click.option("--duration", default=None, help="Run time, e.g. 30s or 2m (with --requests: "
                                               "whichever ends first).")
@click.option("--method", default=None, help="HTTP method [default: GET, or POST with a body].")
@click.option("--header", "headers", multiple=True, help="'Name: value'; repeatable.")
@click.option("--data", default=None, help="Request body.")
@click.option("--data-file", type=click.Path(dir_okay=False), default=None,
              help="Read the request body from this file.")
@click.option("--timeout", default="10s", show_default=True, help="Per-request timeout.")
@click.option("--login-endpoint", default="/api/auth/login", show_default=True)
@click.option("--token-field", default="access_token", show_default=True)
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Open model: total requests per second across all workers; latency is "
                   "measured from each request's scheduled send time.")
@click.option("--stage", "stages", multiple=True, metavar="DURATION:RATE",
              help="Open model: ramp linearly to RATE over DURATION; repeatable.")
@click.option("--max-connections", type=click.IntRange(min=1), default=None,
              help="Open model: connections may grow to this when all are busy "
                   "[default: --concurrency, i.e. requests wait].")
@click.option("--quiet", "-q", is_flag=True, help="No live progress on stderr.")
def run(**opts: Any) -> None:
    """Send load to --url and report exact latency percentiles."""
    try:
        config = build_config(opts)
    except ConfigError as exc:
        fail(str(exc))
    from loadgen.session import run_session

    sys.exit(run_session(config, opts))


def build_config(opts: dict[str, Any]) -> RunConfig:
    """Validate every option; raises ConfigError with the line to show."""
    target = Target.parse(opts["url"])
    duration = parse_duration(opts["duration"], "--duration") if opts["duration"] else None
    requests = opts["requests"]
    schedule = _schedule(opts, requests, duration)
    if requests is None and duration is None and schedule is None:
        requests = DEFAULT_REQUESTS
    body = _read_body(opts["data"], opts["data_file"])
    method = parse_method(opts["method"]) if opts["method"] else ("POST" if body else "GET")
    endpoints = tuple(Endpoint(method, normalize_path(p), body) for p in dict.fromkeys(opts["endpoints"]))
    headers = tuple(parse_header(h) for h in opts["headers"])
    concurrency = opts["concurrency"]
    workers = opts["workers"] or os.cpu_count() or 1
    workers = min(workers, concurrency, requests or workers)
    if opts["auth"] and not opts["password"]:
        raise ConfigError("--auth needs a password (--password or LOADGEN_PASSWORD)")
    return RunConfig(
        url=opts["url"], target=target, endpoints=endpoints, requests=requests,
        duration_s=duration, concurrency=concurrency, workers=workers,
        timeout_s=parse_duration(opts["timeout"], "--timeout"), insecure=opts["insecure"],
        auth=opts["auth"], username=opts["username"],
        login_endpoint=normalize_path(opts["login_endpoint"]), token_field=opts["token_field"],
        headers=headers, schedule=schedule,
        max_connections=max(concurrency, opts["max_connections"] or 0))


def _schedule(opts: dict[str, Any], requests: int | None, duration: float | None) -> Any:
    """The open model's send schedule, or None for the closed model."""
    from loadgen.pacer import build_schedule, parse_stage

    stages = [parse_stage(text) for text in opts["stages"]]
    if opts["rate"] is None and not stages:
        if opts["max_connections"] is not None:
            raise ConfigError("--max-connections needs --rate or --stage (the open model)")
        return None
    if not stages and requests is None and duration is None:
        raise ConfigError("--rate needs --duration or --requests to end the run")
    return build_schedule(opts["rate"], stages, duration)


def _read_body(data: str | None, data_file: str | None) -> bytes:
    if data is not None and data_file is not None:
        raise ConfigError("--data and --data-file cannot be used together")
    if data_file is None:
        return (data or "").encode()
    try:
        with open(data_file, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"--data-file: cannot read {data_file}: {exc.strerror}") from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="0 picks a free port (printed on start).")
def serve(host: str, port: int) -> None:
    """Run the built-in demo target (a stand-in API with JWT login and test endpoints)."""
    from loadgen.target.server import serve as serve_target

    try:
        serve_target(host, port)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@cli.command()
@click.option("--requests", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), default="loadgen-demo.json",
              show_default=True)
@click.option("--output-image", type=click.Path(dir_okay=False), default="loadgen-demo.png",
              show_default=True)
def demo(requests: int, concurrency: int, save: str, output_image: str) -> None:
    """Start the built-in target on a free port and load-test the seed's endpoints."""
    from loadgen.demo import builtin_target
    from loadgen.session import run_session

    with builtin_target() as url:
        click.echo(f"Built-in target at {url}")
        opts = {**_run_defaults(), "url": url, "requests": requests, "concurrency": concurrency,
                "endpoints": ["/api/health", "/api/dataset/summary", "/api/dataset/transform"],
                "save": save, "visualize": True, "output_image": output_image}
        status = run_session(build_config(opts), opts)
    sys.exit(status)


def _run_defaults() -> dict[str, Any]:
    """Every ``run`` option at its default, as Click would pass them."""
    with run.make_context("run", []) as ctx:
        return dict(ctx.params)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--visualize", is_flag=True, help="Draw the charts.")
@click.option("--output-image", type=click.Path(dir_okay=False), default=None,
              help="Where the chart goes [default: FILE with .png].")
@click.option("--json", "as_json", is_flag=True, help="Print the results document as JSON.")
def report(file: str, visualize: bool, output_image: str | None, as_json: bool) -> None:
    """Re-render the table, JSON and charts of a saved run."""
    from loadgen.reportcmd import report_command

    sys.exit(report_command(file, visualize, output_image, as_json))


def main() -> None:
    """Console entry: Click's multi-line usage errors become one line, exit 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", EXIT_INTERRUPTED)
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "), EXIT_INPUT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(EXIT_OK)
