"""The README's first commands on a freshly installed Debian 12, from a clean checkout, as root.

The machine has Python but not python3-venv, procps or any library Qt needs: `scripts/install
--test` (the install step of `scripts/test`) must set all that up and say what it does, the
self-test tests must pass there, and `scripts/run` must then find .venv complete. Run by
scripts/test-installer with the installer test (root; downloads from the Debian mirror and PyPI,
kept in fresh_debian.CACHE for the next run).
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.installer.fresh_debian import CACHE, DebianRoot, fresh_debian

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT = "/root/batchdesk"
# The certificates this machine trusts, for pip inside the root: a build network may reach PyPI
# only through a proxy whose certificate a fresh Debian does not know. Plumbing, not under test.
HOST_CERTIFICATES = Path("/etc/ssl/certs/ca-certificates.crt")
CERTIFICATES = "/etc/ssl/certs/build-machine.crt"


def copy_checkout(debian: DebianRoot) -> None:
    """Copy the files a clone of this checkout has (with uncommitted edits) into the root."""
    listed = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    names = [name for name in listed.decode().split("\0") if name and (ROOT / name).exists()]
    target = debian.host_path(CHECKOUT)
    target.mkdir()
    packed = subprocess.run(
        ["tar", "-C", ROOT, "--null", "-T", "-", "-cf", "-"],
        input="\0".join(names).encode(),
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-C", target, "-xf", "-"], input=packed.stdout, check=True)


def test_a_clean_checkout_installs_tests_and_runs_on_a_fresh_debian(tmp_path: Path) -> None:
    pip_cache = CACHE / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    with fresh_debian(tmp_path / "root") as debian:
        debian.caches["/root/.cache/pip"] = pip_cache
        # What a fresh Debian 12 has: Python, certificates for PyPI; not python3-venv or procps.
        prepared = debian.run("sh", "-c", "apt-get update && apt-get install -y python3")
        assert prepared.returncode == 0, prepared.stdout + prepared.stderr
        assert debian.run("python3", "-c", "import ensurepip").returncode != 0
        assert debian.run("sh", "-c", "command -v ps").returncode != 0
        copy_checkout(debian)
        pip = {}
        if HOST_CERTIFICATES.exists():
            shutil.copy(HOST_CERTIFICATES, debian.host_path(CERTIFICATES))
            pip["PIP_CERT"] = CERTIFICATES

        installed = debian.run(f"{CHECKOUT}/scripts/install", "--test", cwd=CHECKOUT, env=pip)

        said = installed.stdout + installed.stderr
        assert installed.returncode == 0, said
        assert "Installing python3.11-venv, which this Python needs to create .venv" in said
        # Only our sentences: not Python's own complaint that ensurepip is missing first.
        assert "ensurepip" not in said
        assert "Failing command" not in said
        assert ", which Qt needs..." in said

        tested = debian.run(
            ".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/e2e/test_self_test.py",
            cwd=CHECKOUT,
        )  # fmt: skip
        assert tested.returncode == 0, tested.stdout[-5000:] + tested.stderr

        ran = debian.run(f"{CHECKOUT}/scripts/run", "--self-test", cwd=CHECKOUT, env=pip)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("self-test passed: PL_DXB_"), ran.stdout
        assert ran.stderr == "", "the complete .venv was installed again"
        assert debian.processes() == []
        # Root's embedded server runs as a system account with no shell, not a person's login.
        account = debian.run("getent", "passwd", "pgserver").stdout.strip().split(":")
        assert int(account[2]) < 1000, account
        assert account[6] == "/usr/sbin/nologin", account
