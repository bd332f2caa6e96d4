"""The Click command line: turns options into a RunConfig and renders the outcome.

No load logic lives here.  Every user mistake ends as one line on stderr and
exit status 2; a run that broke exits 3 with partial results still saved.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from loadgen import __version__, errors
from loadgen.commands.inputs import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ITERATIONS,
    DEFAULT_REQUESTS,
    capacity_inputs,
    run_inputs,
)
from loadgen.config.model import ConfigError


def status_of(command: Callable[..., int], *args: Any, **kwargs: Any) -> int:
    """Run a command function as the CLI does: its exit status, and an error it raised
    printed as its one line (tests call commands in-process through this)."""
    try:
        return command(*args, **kwargs)
    except errors.LoadgenError as exc:
        click.echo(errors.error_line(str(exc)), err=True)
        return exc.status


def fail(message: str, status: int = errors.INPUT) -> NoReturn:
    """The one place a command's error becomes its line on stderr and its exit status."""
    click.echo(errors.error_line(message), err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loadgen")
def cli() -> None:
    """loadgen: multiprocess HTTP load generator with exact HDR percentiles."""


def _options(*decorators: Any) -> Any:
    """Apply a group of Click options (shared by run and capacity) in reading order."""
    def apply(f: Any) -> Any:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


TARGET_OPTIONS = _options(
    click.option("--url", default="http://localhost:5000", show_default=True,
                 help="Base URL of the API."),
    click.option("--endpoint", "endpoints", multiple=True, default=["/api/health"],
                 show_default=True,
                 help="Path to test; repeat for several (requests are spread evenly)."),
    click.option("--auth", is_flag=True, help="Log in first and send the JWT as a Bearer token."),
    click.option("--username", default="user", show_default=True),
    click.option("--password", default="user123", envvar="LOADGEN_PASSWORD", show_default=True,
                 help="Password for --auth (or set LOADGEN_PASSWORD)."),
    click.option("--ask-password", is_flag=True,
                 help="Prompt for the --auth password (hidden), or read a line from stdin."),
    click.option("--save", type=click.Path(dir_okay=False), default=None,
                 help="Write the results as JSON to this file."),
    click.option("--visualize", is_flag=True, help="Draw the charts (PNG)."),
    click.option("--output-image", type=click.Path(dir_okay=False), default=None,
                 help="Where --visualize writes its PNG."),
    click.option("--html", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                 help="Write a self-contained HTML report (tables and charts) to FILE."),
    click.option("--csv", default=None, metavar="PREFIX",
                 help="Write PREFIX_stats.csv (one row per endpoint and the total) and "
                      "PREFIX_intervals.csv (per second and endpoint, wall-clock times)."),
    click.option("--junit", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                 help="Write JUnit XML for CI: one test case per threshold and per "
                      "endpoint's expect checks, failures with the actual value."),
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="Worker processes [default: CPU count, at most the concurrency]."),
    click.option("--method", default=None, help="HTTP method [default: GET, or POST with a body]."),
    click.option("--header", "headers", multiple=True,
                 help="'Name: value'; repeatable. Replaces loadgen's own header of that name "
                      "(Host, User-Agent, Accept), e.g. 'Host: api.example.test' for a virtual "
                      "host."),
    click.option("--expect-status", default=None, metavar="STATUSES",
                 help="Statuses that count as a success, e.g. 200-399 or 200,201,304 or "
                      "2xx,304 [default: 200-299]."),
    click.option("--data", default=None, help="Request body."),
    click.option("--data-file", type=click.Path(dir_okay=False), default=None,
                 help="Read the request body from this file."),
    click.option("--timeout", default="10s", show_default=True, help="Per-request timeout."),
    click.option("--login-endpoint", default="/api/auth/login", show_default=True),
    click.option("--token-field", default="access_token", show_default=True),
    click.option("--insecure", is_flag=True, help="Do not verify TLS certificates."),
    click.option("--no-keepalive", is_flag=True,
                 help="A new connection for every request (sends 'Connection: close'): "
                      "measures connect and TLS in every latency."),
    click.option("--proxy", default=None, metavar="URL",
                 help="Send every request through this HTTP proxy, http://[user:password@]"
                      "host[:port] (port 1080 if none; https targets through CONNECT); '' for "
                      "none [default: http_proxy / https_proxy, unless NO_PROXY names the host]."),
    click.option("--no-proxy", "no_proxy", is_flag=True,
                 help="Ignore the proxy environment variables (HTTP_PROXY, HTTPS_PROXY, "
                      "NO_PROXY): connect directly unless --proxy says otherwise."),
    click.option("--quiet", "-q", is_flag=True, help="No live progress on stderr."),
    click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
                 help="Serve Prometheus/OpenMetrics metrics at http://HOST:PORT/metrics while "
                      "the run goes (0 picks a free port, printed on stderr)."),
    click.option("--metrics-host", default=None, metavar="HOST",
                 help="Address of this machine the metrics endpoint listens on "
                      "[default: 127.0.0.1]."),
    click.option("--monitor-pid", type=click.IntRange(min=1), default=None, metavar="PID",
                 help="Sample this local server process and its children every second (CPU, "
                      "memory, threads, open files, connections) beside the latency."),
    click.option("--monitor-url", default=None, metavar="URL",
                 help="Sample a Prometheus node-exporter /metrics page every second (CPU, "
                      "memory, load, network) beside the latency."),
)

#: TLS trust and client certificates (run and capacity); files are checked before any load.
TLS_OPTIONS = _options(
    click.option("--cacert", default=None, metavar="FILE",
                 help="Trust the CA certificates in this PEM file instead of the system's "
                      "(SSL_CERT_FILE / SSL_CERT_DIR are honoured without it)."),
    click.option("--cert", default=None, metavar="FILE",
                 help="Client certificate (PEM) for servers that ask for one (mTLS); "
                      "may also hold the key."),
    click.option("--key", default=None, metavar="FILE",
                 help="Private key (PEM, unencrypted) of --cert, when not in the same file."),
)


@cli.command()
@TARGET_OPTIONS
@TLS_OPTIONS
@click.option("--requests", type=click.IntRange(min=1), default=None,
              help=f"Total requests across all workers [default: {DEFAULT_REQUESTS}, "
                   "or unlimited with --duration].")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Journeys ([[users]] in a scenario file): total iterations across all "
                   f"workers, exact [default: {DEFAULT_ITERATIONS}, or unlimited with "
                   "--duration]; replaces --requests.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help=f"Total connections across all workers [default: {DEFAULT_CONCURRENCY}]; "
                   "with --user-stage, the users at the start [default: 0]; with journeys, "
                   "the virtual users (one connection each).")
@click.option("--duration", default=None, help="Run time, e.g. 30s or 2m (with --requests: "
                                               "whichever ends first).")
@click.option("--user-stage", "user_stages", multiple=True, metavar="DURATION:USERS",
              help="Closed model: ramp linearly to USERS virtual users over DURATION (each "
                   "its own connection); repeatable. The run lasts as long as the stages.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Open model: total requests per second across all workers; latency is "
                   "measured from each request's scheduled send time.")
@click.option("--stage", "stages", multiple=True, metavar="DURATION:RATE",
              help="Open model: ramp linearly to RATE over DURATION; repeatable.")
@click.option("--max-connections", type=click.IntRange(min=1), default=None,
              help="Open model: connections may grow to this when all are busy "
                   "[default: --concurrency, i.e. requests wait].")
@click.option("--threshold", "thresholds", multiple=True,
              help="Pass/fail condition, e.g. 'p99<200ms', 'failures<1%', 'rps>1000', "
                   "'GET /api/health: p95<50ms'; a threshold that fails exits 1. Repeatable.")
@click.option("--feeder", type=click.Path(dir_okay=False), default=None,
              help="Rows (CSV with a header row, or JSON Lines) for {{ column }} placeholders "
                   "in --endpoint, --header and --data.")
@click.option("--feeder-mode", type=click.Choice(["sequential", "random", "per-user"]),
              default=None, help="Which row a request takes: sequential (request k: row k mod "
                                 "N), random, or per-user (user i: row i mod N) "
                                 "[default: sequential].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Scenario file (TOML); options typed on the command line override it.")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Run on the workers of this Dask scheduler (e.g. tcp://10.0.0.5:8786); "
                   "needs loadgen[cluster] on every machine.")
@click.option("--workers-per-node", type=click.IntRange(min=1), default=None,
              help="With --cluster: worker processes per node [default: its CPU count, "
                   "shared by the Dask workers on one host].")
def run(**opts: Any) -> None:
    """Send load to --url and report exact latency percentiles."""
    ctx = click.get_current_context()
    typed = {name for name in opts
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                   ParameterSource.ENVIRONMENT)}
    try:
        config_file = opts.pop("config_file")
        scenario = None
        if config_file:
            from loadgen.config.scenario import load_scenario

            scenario = load_scenario(config_file)
        config, login, chosen = run_inputs(opts, scenario, typed)
    except ConfigError as exc:
        fail(str(exc))
    from loadgen.commands.run import run_session

    sys.exit(run_session(config, login, chosen))


@cli.command()
@TARGET_OPTIONS
@TLS_OPTIONS
@click.option("--slo", "slos", multiple=True, required=True,
              help="Condition each step must meet, e.g. 'p99<100ms', 'failures<1%'. Repeatable.")
@click.option("--start-rate", type=click.FloatRange(min=0, min_open=True), default=50,
              show_default=True, help="First step's rate (req/s); doubled until a step fails.")
@click.option("--max-rate", type=click.FloatRange(min=0, min_open=True), default=100_000,
              show_default=True, help="Never try above this rate.")
@click.option("--step-duration", default="10s", show_default=True, help="Length of each step.")
@click.option("--precision", type=click.FloatRange(0.005, 1.0), default=0.05, show_default=True,
              help="Bisect until the bracket is this narrow (relative).")
@click.option("--concurrency", type=click.IntRange(min=1), default=50, show_default=True,
              help="Connections opened before each step.")
@click.option("--max-connections", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Connections may grow to this when all are busy.")
def capacity(**opts: Any) -> None:
    """Find the highest constant rate at which the SLOs hold."""
    try:
        settings, config, login, chosen = capacity_inputs(opts)
    except ConfigError as exc:
        fail(str(exc))
    from loadgen.commands.capacity import capacity_command

    sys.exit(capacity_command(config, login, chosen, settings))


#: The metrics ``compare`` tests (loadgen.stats.compare.TESTED_METRICS, not imported: it loads
#: numpy), and "any" of them.
REGRESSION_METRICS = ("p50", "p99", "rps", "any")


@cli.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--label", "labels", multiple=True, help="Name for each run [default: file names].")
@click.option("--visualize", is_flag=True, help="Overlay the runs' charts.")
@click.option("--output-image", type=click.Path(dir_okay=False), default=None,
              help="Where the comparison chart goes [default: compare.png].")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--html", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the comparison and each run side by side as one HTML file.")
@click.option("--fail-on-regression", "fail_on", multiple=True, metavar="METRIC",
              type=click.Choice(REGRESSION_METRICS, case_sensitive=False),
              help="Exit 1 when a later run is significantly worse on METRIC "
                   f"({', '.join(REGRESSION_METRICS)}); repeatable.")
@click.option("--floor", "floor_pct", type=click.FloatRange(min=0), default=None, metavar="PCT",
              help="Noise floor: a change below PCT % of the first run is never significant "
                   "[default: p50 5%, p99 20%, rps 10%; latency also below 0.5 ms / 2 ms].")
def compare(files: tuple[str, ...], labels: tuple[str, ...], visualize: bool,
            output_image: str | None, as_json: bool, html: str | None, fail_on: tuple[str, ...],
            floor_pct: float | None) -> None:
    """Compare saved runs: each metric side by side, with significance tests."""
    from loadgen.commands.compare import compare_command

    sys.exit(compare_command(list(files), list(labels), visualize, output_image, as_json,
                             fail_on=[m.lower() for m in fail_on], floor=floor_pct, html=html))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="0 picks a free port (printed on start).")
@click.option("--token-ttl", type=click.IntRange(min=1), default=3600, show_default=True,
              metavar="SECONDS", help="Lifetime of the tokens /api/auth/login issues.")
def serve(host: str, port: int, token_ttl: int) -> None:
    """Run the built-in demo target (a stand-in API with JWT login and test endpoints)."""
    from loadgen.target.server import serve as serve_target

    try:
        serve_target(host, port, token_ttl)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@cli.command()
@click.option("--duration", type=click.FloatRange(min=1, max=600), default=9.0,
              show_default=True, metavar="SECONDS",
              help="The run's length: a ramp up over its first third, then a hold.")
@click.option("--rate", type=click.FloatRange(min=1, max=100_000), default=400.0,
              show_default=True, help="The rate the ramp reaches, requests per second.")
@click.option("--requests", type=click.IntRange(min=1), default=None,
              help="Stop after this many requests (default: when the ramp and hold end).")
@click.option("--concurrency", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--save", type=click.Path(dir_okay=False), default="loadgen-demo.json",
              show_default=True)
@click.option("--output-image", type=click.Path(dir_okay=False), default="loadgen-demo.png",
              show_default=True)
@click.option("--html", type=click.Path(dir_okay=False), default="loadgen-demo.html",
              show_default=True, help="The self-contained HTML report.")
def demo(duration: float, rate: float, requests: int | None, concurrency: int, save: str,
         output_image: str, html: str) -> None:
    """Start the built-in target on a free port and load-test the seed's endpoints."""
    from loadgen.commands.demo import demo_command

    sys.exit(demo_command({**_run_defaults(), "html": html}, requests, concurrency, save,
                          output_image, duration_s=duration, rate=rate))


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
@click.option("--html", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the run's self-contained HTML report to FILE.")
@click.option("--csv", default=None, metavar="PREFIX",
              help="Write PREFIX_stats.csv and PREFIX_intervals.csv.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the thresholds and checks as JUnit XML.")
def report(file: str, visualize: bool, output_image: str | None, as_json: bool,
           html: str | None, csv: str | None, junit: str | None) -> None:
    """Re-render the table, JSON, charts, HTML report, CSV and JUnit XML of a saved run."""
    from loadgen.commands.report import report_command

    sys.exit(report_command(file, visualize, output_image, as_json, html=html, csv=csv,
                            junit=junit))


def main() -> None:
    """Console entry: Click's multi-line usage errors become one line, exit 2."""
    try:
        cli.main(standalone_mode=False)
    except errors.LoadgenError as exc:
        fail(str(exc), exc.status)
    except click.exceptions.Abort:
        fail("aborted", errors.INTERRUPTED)
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "), errors.INPUT)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(errors.OK)
