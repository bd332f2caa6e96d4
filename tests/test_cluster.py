"""``loadgen run --cluster``: a real Dask scheduler and workers on 127.0.0.1.

The scheduler listens on a free port (read from its log), each ``dask worker``
is a node in its own process group (so a node can be killed with everything it
started, as a machine dies), and every wait is on an event: a log line, or the
results file the run rewrites every second.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from conftest import start_target_server, stop_target_server
from helpers import REPO, loadgen, one_line_error, wait_for_status

#: timing-sensitive (verdicts, stalls, rates): run alone, after the parallel tests
pytestmark = pytest.mark.serial

HAVE_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="needs loadgen[cluster] (distributed)")
START_TIMEOUT_S = 60.0


@dataclass
class DaskProcess:
    """A ``dask scheduler`` or ``dask worker`` whose log is read line by line as it comes."""

    proc: subprocess.Popen[bytes]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)
    reader: threading.Thread = field(init=False)

    @classmethod
    def start(cls, *args: str, cwd: Path) -> DaskProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        started = cls(proc)
        started.reader = threading.Thread(target=started._read, daemon=True)
        started.reader.start()
        return started

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.log.append(line)
            self.lines.put(line)
        self.lines.put("")   # end of the log: the process is gone

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first log line matching ``pattern`` from here on (fails if the process ends)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line, "dask exited:\n" + "".join(self.log)
            found = re.search(pattern, line)
            if found:
                return found

    def kill(self) -> None:
        """SIGKILL the whole process group: the Dask process and everything it started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.reader.join()   # the log is complete and its pipe can be closed
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class DaskCluster:
    scheduler: DaskProcess
    address: str
    workers: dict[str, DaskProcess]   # node address -> its dask worker
    folder: Path

    def add_worker(self) -> str:
        """Start one more ``dask worker``; return its address once it has registered."""
        worker = DaskProcess.start(
            "worker", self.address, "--nworkers", "1", "--nthreads", "2", "--no-dashboard",
            "--host", "127.0.0.1", "--local-directory", str(self.folder), cwd=self.folder)
        address = worker.wait_for(r"Start worker at:\s+(\S+)").group(1)
        worker.wait_for(r"Registered to:")
        self.workers[address] = worker
        return address


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler on a free loopback port and two registered workers (nodes)."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler = DaskProcess.start("scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                                  cwd=folder)
    cluster = DaskCluster(scheduler, "", {}, folder)
    try:
        cluster.address = scheduler.wait_for(r"Scheduler at:\s+(tcp://\S+)").group(1)
        started = [threading.Thread(target=cluster.add_worker) for _ in range(2)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
        assert len(cluster.workers) == 2, "".join(scheduler.log)
        yield cluster
    finally:
        for worker in cluster.workers.values():
            worker.kill()
        scheduler.kill()


@needs_dask
def test_counts_are_exact_across_nodes(dask_cluster, target_server, tmp_path: Path) -> None:
    """4 workers on 2 nodes: 2001 requests split 501/500/500/500, the token reaches every node."""
    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--cluster", dask_cluster.address,
                  "--workers-per-node", "2", "--requests", "2001", "--concurrency", "9",
                  "--endpoint", "/api/health", "--endpoint", "/api/analysis/transcript",
                  "--auth", "--username", "admin", "--password", "admin123", "--quiet",
                  save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc["status"] == "complete" and doc["problems"] == []
    assert doc["summary"]["requests"] == doc["summary"]["successes"] == 2001
    paths = target_server.stats()["paths"]   # besides the one login
    assert (paths["/api/health"], paths["/api/analysis/transcript"]) == (1001, 1000)
    assert [e["requests"] for e in doc["endpoints"]] == [1001, 1000]
    assert doc["summary"]["status_codes"] == {"200": 2001}   # admin-only endpoint: token arrived
    assert [w["requests"] for w in doc["workers"]] == [501, 500, 500, 500]
    assert doc["config"]["workers"] == 4 and doc["config"]["cluster"] == dask_cluster.address
    nodes = doc["nodes"]
    assert sorted(n["address"] for n in nodes) == sorted(dask_cluster.workers)
    assert [(n["workers"], n["requests"], n["lost"]) for n in nodes] == [(2, 1001, None),
                                                                         (2, 1000, None)]
    assert doc["generator"]["connections"] == 9
    logs = "".join(line for w in dask_cluster.workers.values() for line in w.log)
    assert "Bearer" not in logs and "Bearer" not in (tmp_path / "r.json").read_text()


@needs_dask
def test_renewed_logins_reach_every_node(dask_cluster, tmp_path: Path) -> None:
    """2 s tokens, 5 s of load on 2 nodes: the central coordinator logs in again before each
    expires and every node's workers get the new header (no expiry 401 at the server)."""
    target = start_target_server(tmp_path / "target.log", args=("--token-ttl", "2"))
    try:
        run = loadgen("run", "--url", target.url, "--cluster", dask_cluster.address,
                      "--workers-per-node", "1", "--duration", "5s", "--rate", "100",
                      "--concurrency", "2", "--endpoint", "/shop/items", "--auth",
                      "--username", "user", "--password", "user123", "--quiet",
                      save=tmp_path / "r.json")
        stats = target.stats()
    finally:
        stop_target_server(target)
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc["status"] == "complete" and len(doc["nodes"]) == 2
    assert stats["unauthorized"] == {"missing": 0, "bad": 0, "expired": 0}
    assert doc["auth"]["logins"] == stats["logins"]["issued"] >= 3
    assert doc["summary"]["status_codes"] == {"200": 500} == {"200": stats["shop"]["listings"]}
    logs = "".join(line for w in dask_cluster.workers.values() for line in w.log)
    assert "Bearer" not in logs and "Bearer" not in (tmp_path / "r.json").read_text()


@needs_dask
def test_open_model_seconds_line_up_from_a_scenario_file(dask_cluster, target_server,
                                                          tmp_path: Path) -> None:
    """``cluster = ...`` in a scenario file; the merged stream keeps the rate second by second."""
    scenario = tmp_path / "cluster.toml"
    scenario.write_text(f'url = "{target_server.url}"\ncluster = "{dask_cluster.address}"\n'
                        'workers_per_node = 1\nrate = 300\nduration = "2s"\nconcurrency = 8\n'
                        'quiet = true\n')
    target_server.reset()
    run = loadgen("run", "--config", str(scenario), save=tmp_path / "r.json")
    assert run.status == 0, run.stderr
    doc = run.doc
    assert doc["model"] == "open"
    assert doc["summary"]["requests"] == 600 == target_server.stats()["requests"]
    per_second = [i["requests"] for i in doc["intervals"]]
    # every node's n-th second is merged into the n-th second: were the nodes' starts 60 ms or
    # more apart, their 150 req/s would spill 9 or more requests into the neighbouring seconds
    assert all(abs(n - 300) <= 9 for n in per_second[:2]), doc["intervals"]
    assert sum(per_second[2:]) <= 9, doc["intervals"]
    assert [n["requests"] for n in doc["nodes"]] == [300, 300]
    assert all(n["start_offset_ms"] is not None for n in doc["nodes"])


@needs_dask
def test_a_killed_node_is_named_and_the_rest_is_kept(dask_cluster, target_server,
                                                      tmp_path: Path) -> None:
    doomed = dask_cluster.add_worker()   # a third node, so the fixture's two stay alive
    save = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "--url", target_server.url, "--cluster",
         dask_cluster.address, "--workers-per-node", "1", "--rate", "300", "--duration", "4s",
         "--concurrency", "6", "--quiet", "--save", str(save)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        wait_for_status(save, "running", limit_s=START_TIMEOUT_S,
                        accept=lambda d: bool(d["intervals"]), proc=proc)
        dask_cluster.workers.pop(doomed).kill()   # the machine dies: its node, its workers
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    doc = orjson.loads(save.read_bytes())
    assert doc["status"] == "failed"
    nodes = {n["address"]: n for n in doc["nodes"]}
    assert set(nodes) == {doomed, *dask_cluster.workers}
    assert nodes[doomed]["lost"] and doomed in err
    assert any(p.startswith(f"node {doomed} lost: ") for p in doc["problems"]), doc["problems"]
    lost = [w for w in doc["workers"] if w["lost"]]
    assert lost and all(w["lost"].startswith(f"node {doomed} lost: ") for w in lost)
    for address in dask_cluster.workers:   # the survivors ran their whole share: 4 s x 100/s
        assert nodes[address]["lost"] is None
        assert nodes[address]["requests"] == 400
    assert doc["summary"]["requests"] == sum(n["requests"] for n in doc["nodes"])
    assert "All endpoints" in out


@needs_dask
def test_nodes_use_the_proxy_of_the_plan(dask_cluster, target_server, tmp_path: Path) -> None:
    """HTTP_PROXY is set where loadgen runs, not on the nodes (started with a clean
    environment): the proxy resolved there travels in the plan, so every node's requests
    go through it -- each one a request line the proxy saw."""
    from forwardproxy import ForwardProxy

    target_server.reset()
    with ForwardProxy() as proxy:
        run = loadgen("run", "--url", target_server.url, "--cluster", dask_cluster.address,
                      "--workers-per-node", "1", "--requests", "401", "--concurrency", "4",
                      "--quiet", save=tmp_path / "r.json", env={"HTTP_PROXY": proxy.url})
        lines = proxy.lines()
    assert run.status == 0, run.stderr
    assert [n["requests"] for n in run.doc["nodes"]] == [201, 200]
    assert lines == [f"GET {target_server.url}/api/health HTTP/1.1"] * 401
    assert target_server.stats()["requests"] == 401
    assert run.doc["config"]["proxy"]["source"] == "HTTP_PROXY"


@needs_dask
def test_journeys_and_feeders_are_exact_across_nodes(dask_cluster, target_server,
                                                     tmp_path: Path) -> None:
    """A shop journey on 2 nodes: the per-user feeder travels with the plan (each of the 4
    users logs in as its own row, once), exactly 30 iterations, every extracted item ordered;
    then a sequential feeder with checks on a plain endpoint: row k mod 10 for request k,
    whichever node sent it."""
    users = tmp_path / "shoppers.csv"
    users.write_text("username,password\n" + "".join(
        f"shopper{i},shopper{i}-pass\n" for i in range(1, 11)))
    journey = tmp_path / "journey.toml"
    journey.write_text(f"""url = "{target_server.url}"
[[users]]
name = "shopper"
data = {{ file = "{users}", mode = "per-user" }}
[[users.on_start]]
method = "POST"
path = "/api/auth/login"
body = '{{"username": "{{{{ username }}}}", "password": "{{{{ password }}}}"}}'
extract = {{ token = "json:access_token" }}
[[users.steps]]
path = "/shop/items"
headers = {{ Authorization = "Bearer {{{{ token }}}}" }}
extract = {{ item = "json:items[0].id" }}
[[users.steps]]
method = "POST"
path = "/shop/orders"
headers = {{ Authorization = "Bearer {{{{ token }}}}" }}
body = '{{"item": "{{{{ item }}}}"}}'
expect = {{ status = [201] }}
""")
    target_server.reset()
    run = loadgen("run", "--config", str(journey), "--cluster", dask_cluster.address,
                  "--workers-per-node", "1", "--iterations", "30", "--concurrency", "4",
                  "--quiet", save=tmp_path / "j.json")
    assert run.status == 0, run.stderr
    stats = target_server.stats()
    assert stats["logins_by_user"] == {f"shopper{i}": 1 for i in range(1, 5)}
    assert stats["orders"]["created"] == 30 and stats["orders"]["refused"] == 0
    (kind,) = run.doc["journeys"]
    assert (kind["iterations"]["total"], kind["iterations"]["successes"]) == (30, 30)
    assert [n["requests"] for n in run.doc["nodes"]] == [2 + 2 * 15, 2 + 2 * 15]
    assert b"-pass" not in (tmp_path / "j.json").read_bytes()

    target_server.reset()
    run = loadgen("run", "--url", target_server.url, "--cluster", dask_cluster.address,
                  "--workers-per-node", "1", "--requests", "40", "--concurrency", "4",
                  "--endpoint", "/api/items/{{ id }}", "--feeder",
                  str(REPO / "configs" / "items.csv"), "--quiet", save=tmp_path / "f.json")
    assert run.status == 0, run.stderr
    assert target_server.stats()["ids_seen"] == {f"item-{i:03d}": 4 for i in range(1, 11)}
    assert [n["requests"] for n in run.doc["nodes"]] == [20, 20]


@needs_dask
def test_unreachable_scheduler_is_one_line_and_exit_2(target_server, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:   # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target_server.reset()
    began = time.monotonic()
    run = loadgen("run", "--url", target_server.url, "--cluster", f"tcp://127.0.0.1:{port}",
                  "--timeout", "2s", save=tmp_path / "r.json")
    elapsed = time.monotonic() - began
    line = one_line_error(run, 2)
    assert f"tcp://127.0.0.1:{port}" in line and "Dask scheduler" in line
    assert elapsed < 2.0 + 5.0, elapsed   # the connect timeout, plus importing and starting
    assert run.doc is None and target_server.stats()["requests"] == 0


def test_a_local_run_never_imports_dask(target_server) -> None:
    """Not in the coordinator, not in a worker: ``-X importtime`` lists every process's imports."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "loadgen", "run", "--url", target_server.url,
         "--requests", "20", "--workers", "1", "--concurrency", "2", "--quiet"],
        check=False, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "gevent" in imported        # the workers' imports are listed too
    assert "loadgen.engine.coordinator" in imported
    assert not {m for m in imported if m.split(".")[0] in ("dask", "distributed")}
