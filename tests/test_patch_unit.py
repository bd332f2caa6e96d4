"""``loadgen.engine.patch.patch_all``: gevent's patching with its plugin lookups read once.

Each case runs in a fresh interpreter (patching is once per process and this one
must stay unpatched).  A plugin is a real installed distribution: a ``.dist-info``
directory with ``entry_points.txt`` on the interpreter's path, as pip would leave it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO

#: every event gevent announces while patching, in the order it announces them
GROUPS = ("gevent.plugins.monkey.will_patch_all", "gevent.plugins.monkey.will_patch_module",
          "gevent.plugins.monkey.did_patch_module", "gevent.plugins.monkey.did_patch_builtins",
          "gevent.plugins.monkey.did_patch_all")


def _python(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{path}:{REPO}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env=env, check=False)


def _install_plugin(root: Path) -> None:
    """A distribution named ``recorder`` whose entry points subscribe to every group."""
    (root / "recorder_plugin.py").write_text(textwrap.dedent("""
        CALLS = []

        def record(event):
            CALLS.append(type(event).__name__)
    """))
    info = root / "recorder-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: recorder\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "".join(f"[{group}]\nrecorder = recorder_plugin:record\n\n" for group in GROUPS))


def test_plugins_see_the_same_events_as_with_gevents_own_patch_all(tmp_path: Path) -> None:
    _install_plugin(tmp_path)
    probe = """
        import importlib.metadata, socket
        lookup = importlib.metadata.entry_points
        {patch}
        import gevent.socket, recorder_plugin
        from gevent import monkey
        assert socket.socket is gevent.socket.socket
        assert monkey.is_module_patched("ssl") and monkey.is_module_patched("threading")
        assert importlib.metadata.entry_points is lookup
        print(",".join(recorder_plugin.CALLS))
    """
    ours = _python(probe.format(patch="from loadgen.engine.patch import patch_all; patch_all()"),
                   tmp_path)
    theirs = _python(probe.format(patch="from gevent import monkey; monkey.patch_all()"), tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    calls = ours.stdout.strip().split(",")
    assert calls == theirs.stdout.strip().split(",")
    assert calls[0] == "GeventWillPatchAllEvent" and calls[-1] == "GeventDidPatchAllEvent"
    assert "GeventDidPatchModuleEvent" in calls


def test_a_failing_patch_puts_the_lookup_back(tmp_path: Path) -> None:
    """A plugin may veto patching by raising: the process's own lookup must survive it."""
    (tmp_path / "veto_plugin.py").write_text("def veto(event):\n    raise RuntimeError('no')\n")
    info = tmp_path / "veto-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: veto\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUPS[0]}]\nveto = veto_plugin:veto\n")
    run = _python("""
        import importlib.metadata
        lookup = importlib.metadata.entry_points
        from loadgen.engine.patch import patch_all
        try:
            patch_all()
        except RuntimeError as exc:
            print("vetoed", exc)
        assert importlib.metadata.entry_points is lookup
    """, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "vetoed no"
