"""The .deb, built from this checkout, installed with dpkg, working, and removed without a trace.

Run by scripts/test-installer (as root, on Debian or Ubuntu); see the README's "Installing on
workstations". Each step is what an admin does on a workstation.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from batchdesk import __version__

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INSTALLED = (
    Path("/opt/batchdesk/batchdesk"),
    Path("/usr/bin/batchdesk"),
    Path("/usr/share/applications/batchdesk.desktop"),
    Path("/usr/share/icons/hicolor/256x256/apps/batchdesk.png"),
    Path("/lib/systemd/system/batchdesk-worker@.service"),
    Path("/usr/share/doc/batchdesk/examples/worker.env"),
)
# Libraries the system gives the bundle (the .deb depends on them): a bundled copy from the build
# machine would be loaded ahead of the newer ones a newer distribution's GTK or Mesa expects.
FROM_THE_SYSTEM = ("libglib-2.0.so.0", "libstdc++.so.6", "libX11.so.6", "libfontconfig.so.1")
# What PyInstaller's bootloader and Qt hook set for the bundle itself, never for its children.
BUNDLE_ONLY = ("LD_LIBRARY_PATH", "QT_PLUGIN_PATH", "QML2_IMPORT_PATH", "_PYI_")
# An external step that records the environment it was given, then copies its input.
RECORD_ENVIRONMENT = 'env > "$2.part" && mv "$2.part" "$2" && cp "$0" "$1"'


def run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, check=False
    )


def installed() -> bool:
    return run("dpkg-query", "-W", "-f=${Status}", "batchdesk").stdout.startswith("install ok")


@pytest.fixture(scope="module")
def deb() -> Path:
    if os.geteuid() != 0 or shutil.which("dpkg") is None:
        pytest.fail("The installer test needs root and dpkg (Debian or Ubuntu).")
    if installed():
        pytest.fail("batchdesk is installed on this machine already; remove it first (dpkg -r).")
    built = run(ROOT / "packaging" / "build.sh", timeout=1800)
    assert built.returncode == 0, built.stderr
    return (
        ROOT
        / "dist"
        / f"batchdesk_{__version__}_{run('dpkg', '--print-architecture').stdout.strip()}.deb"
    )


def test_the_deb_installs_runs_its_self_test_and_removes_cleanly(deb: Path, tmp_path: Path) -> None:
    done = run("dpkg", "-i", deb)
    try:
        assert done.returncode == 0, done.stderr
        for path in INSTALLED:
            assert path.exists(), f"{path} was not installed"

        internal = Path("/opt/batchdesk/_internal")
        bundled = [name for name in FROM_THE_SYSTEM if (internal / name).exists()]
        assert bundled == [], f"the bundle carries the system's {bundled}"

        version = run("/usr/bin/batchdesk", "--version")
        assert version.stdout.strip() == f"batchdesk {__version__}"

        # As root the self-test refuses a TMPDIR inside HOME (the embedded server would open
        # HOME to all users), so the two are apart, as /tmp and /root are.
        (tmp_path / "tmp").mkdir()
        (tmp_path / "home").mkdir()
        env = {
            "PATH": "/usr/bin:/bin",
            "TMPDIR": str(tmp_path / "tmp"),
            "HOME": str(tmp_path / "home"),
        }
        checked = subprocess.run(
            ["/usr/bin/batchdesk", "--self-test"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.startswith("self-test passed: PL_DXB_"), checked.stdout

        tool_environment = environment_of_an_external_tool(tmp_path / "tool")
        leaked = sorted(name for name in tool_environment if name.startswith(BUNDLE_ONLY))
        assert leaked == [], f"a pipeline's external tool was given the bundle's {leaked}"

        desktop = Path("/usr/share/applications/batchdesk.desktop").read_text()
        assert "\nExec=batchdesk\n" in desktop
        assert "\nIcon=batchdesk\n" in desktop
        if shutil.which("systemd-analyze"):
            unit = "/lib/systemd/system/batchdesk-worker@main.service"
            verified = run("systemd-analyze", "verify", unit)
            assert verified.returncode == 0, verified.stderr
    finally:
        removed = run("dpkg", "--purge", "batchdesk")  # as `apt purge`: not even dpkg's record
    assert removed.returncode == 0, removed.stderr
    assert not installed()
    left = [str(path) for path in INSTALLED if path.exists()]
    assert left == [], f"dpkg --purge left {left}"
    assert not Path("/opt/batchdesk").exists()


def environment_of_an_external_tool(home: Path) -> set[str]:
    """Run a job whose external step records its environment; return the variables' names."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "BATCHDESK_HOME": str(home / "batchdesk")}
    (home / "in").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(home / "in" / "PL_DXB1_env.png")
    recorded = home / "environment.txt"
    worker = subprocess.Popen(
        ["/usr/bin/batchdesk", "worker", "--threads", "1"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        first = ""
        while not first.startswith("Worker "):  # the embedded server is up and migrated
            first = worker.stderr.readline()
            assert first, "the installed worker stopped before it started"
        record = ["/bin/sh", "-c", RECORD_ENVIRONMENT, "{input}", "{output}", str(recorded)]
        steps = [{"op": "external", "args": record}, {"op": "output", "format": "png"}]
        socket_dir = home / "batchdesk" / "data" / "postgres"
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="batchdesk") as conn:
            conn.execute(
                "INSERT INTO pipelines (name, description, steps) VALUES ('env', 'env', %s)",
                (json.dumps(steps),),
            )
        submitted = subprocess.run(
            ["/usr/bin/batchdesk", "submit", str(home / "in"), "-p", "env"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert submitted.returncode == 0, submitted.stderr
        deadline = time.monotonic() + 120
        while not recorded.exists():
            assert time.monotonic() < deadline, "the external step never ran"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=120)
    return {line.split("=", 1)[0] for line in recorded.read_text().splitlines() if "=" in line}
