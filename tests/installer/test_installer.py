"""The .deb, built from this checkout, installed with dpkg, working, and removed without a trace.

Run by scripts/test-installer (as root, on Debian or Ubuntu); see the README's "Installing on
workstations". Each step is what an admin does on a workstation.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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

        version = run("/usr/bin/batchdesk", "--version")
        assert version.stdout.strip() == f"batchdesk {__version__}"

        env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}
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

        desktop = Path("/usr/share/applications/batchdesk.desktop").read_text()
        assert "\nExec=batchdesk\n" in desktop
        assert "\nIcon=batchdesk\n" in desktop
        if shutil.which("systemd-analyze"):
            unit = "/lib/systemd/system/batchdesk-worker@main.service"
            verified = run("systemd-analyze", "verify", unit)
            assert verified.returncode == 0, verified.stderr
    finally:
        removed = run("dpkg", "-r", "batchdesk")
    assert removed.returncode == 0, removed.stderr
    assert not installed()
    left = [str(path) for path in INSTALLED if path.exists()]
    assert left == [], f"dpkg -r left {left}"
    assert not Path("/opt/batchdesk").exists()
