"""The .deb, built here, installed on a fresh Debian 12, working, and purged without a trace.

Run by scripts/test-installer (as root); see the README's "Installing on workstations". The
package is built on this machine, then installed with apt into a minimal Debian 12 root
(tests/installer/fresh_debian.py) that has none of the libraries Qt needs: a library missing from
the package's Depends fails the self-test here instead of on a workstation. Each step is what an
admin does on a workstation.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from batchdesk import __version__
from tests.installer.fresh_debian import DebianRoot, fresh_debian

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = "/usr/lib/batchdesk"
INSTALLED = (
    f"{BUNDLE}/batchdesk",
    "/usr/bin/batchdesk",
    "/usr/share/applications/batchdesk.desktop",
    "/usr/share/icons/hicolor/256x256/apps/batchdesk.png",
    "/lib/systemd/system/batchdesk-worker@.service",
    "/usr/share/doc/batchdesk/examples/worker.env",
)
# Libraries the system gives the bundle (the .deb depends on them): a bundled copy from the build
# machine would be loaded ahead of the newer ones a newer distribution's GTK or Mesa expects.
FROM_THE_SYSTEM = ("libglib-2.0.so.0", "libstdc++.so.6", "libX11.so.6", "libfontconfig.so.1")
# What PyInstaller's bootloader and Qt hook set for the bundle itself, never for its children.
BUNDLE_ONLY = ("LD_LIBRARY_PATH", "QT_PLUGIN_PATH", "QML2_IMPORT_PATH", "_PYI_")
# An external step that records the environment it was given, then copies its input.
RECORD_ENVIRONMENT = 'env > "$2.part" && mv "$2.part" "$2" && cp "$0" "$1"'
# Where apt, dpkg and the test itself write while they work; anything else named batchdesk
# after a purge was left behind.
BOOKKEEPING = ("tmp", "var/cache/apt", "var/lib/apt", "var/lib/dpkg", "var/log")


def run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def deb() -> Path:
    """The .deb, built on this machine (the build machine) from the checkout."""
    if os.geteuid() != 0 or shutil.which("dpkg") is None or shutil.which("debootstrap") is None:
        pytest.fail("The installer test needs root, dpkg and debootstrap (Debian or Ubuntu).")
    built = run(ROOT / "packaging" / "build.sh", timeout=1800)
    assert built.returncode == 0, built.stderr
    arch = run("dpkg", "--print-architecture").stdout.strip()
    return ROOT / "dist" / f"batchdesk_{__version__}_{arch}.deb"


@pytest.fixture(scope="module")
def debian(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianRoot]:
    """A fresh Debian 12 whose first person's account (uid 1000) exists, as after installation."""
    with fresh_debian(tmp_path_factory.mktemp("deb") / "root") as root:
        updated = root.run("apt-get", "update")
        assert updated.returncode == 0, updated.stderr
        added = root.run("useradd", "--create-home", "--shell", "/bin/bash", "anna")
        assert added.returncode == 0, added.stderr
        yield root


def accounts(root: DebianRoot) -> dict[str, list[str]]:
    """Return the root's user accounts: name -> the other fields of its /etc/passwd line."""
    lines = root.host_path("/etc/passwd").read_text().splitlines()
    return {name: rest for name, *rest in (line.split(":") for line in lines)}


def groups(root: DebianRoot) -> set[str]:
    return {line.split(":")[0] for line in root.host_path("/etc/group").read_text().splitlines()}


def package_installed(root: DebianRoot, package: str) -> bool:
    status = root.run("dpkg-query", "-W", "-f=${Status}", package).stdout
    return status.startswith("install ok")


def installed(root: DebianRoot) -> bool:
    return package_installed(root, "batchdesk")


def install(root: DebianRoot, deb: Path) -> subprocess.CompletedProcess[str]:
    """`apt install ./batchdesk.deb`, so apt fetches its Depends from the mirror (and no more)."""
    shutil.copy(deb, root.host_path("/tmp"))
    return root.run("apt-get", "install", "-y", "--no-install-recommends", f"/tmp/{deb.name}")


def purge(root: DebianRoot) -> subprocess.CompletedProcess[str]:
    return root.run("apt-get", "purge", "-y", "batchdesk")


def left_behind(root: DebianRoot) -> list[str]:
    """Return the paths in the root, outside apt's and dpkg's own records, named batchdesk."""
    skip = {root.host_path(folder) for folder in BOOKKEEPING}
    found = []
    for folder, subfolders, files in os.walk(root.path):
        subfolders[:] = [name for name in subfolders if Path(folder, name) not in skip]
        found += [
            "/" + str(Path(folder, name).relative_to(root.path))
            for name in subfolders + files
            if "batchdesk" in name
        ]
    return found


def test_the_deb_installs_on_a_fresh_debian_runs_for_root_and_a_user_and_purges_cleanly(
    deb: Path, debian: DebianRoot
) -> None:
    opt = debian.host_path("/opt")  # a fresh Debian has an empty /opt, owned by no package
    assert opt.is_dir()
    assert not any(opt.iterdir())
    accounts_before = accounts(debian)
    # None of the libraries the bundle needs from the system is there before.
    depends = ("libglib2.0-0", "libegl1", "libfontconfig1", "libxkbcommon0", "libxcb-cursor0")
    assert [package for package in depends if package_installed(debian, package)] == []

    done = install(debian, deb)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        missing = [path for path in INSTALLED if not debian.host_path(path).exists()]
        assert missing == [], f"not installed: {missing}"
        internal = debian.host_path(f"{BUNDLE}/_internal")
        bundled = [name for name in FROM_THE_SYSTEM if (internal / name).exists()]
        assert bundled == [], f"the bundle carries the system's {bundled}"

        # The embedded server's account, made by the package: a system account nobody logs in to.
        pgserver = accounts(debian)["pgserver"]
        uid, home, shell = int(pgserver[1]), pgserver[4], pgserver[5]
        assert uid < 1000, f"pgserver has uid {uid}, in the range of people's accounts"
        assert shell == "/usr/sbin/nologin"
        assert not debian.host_path(home).exists()

        for user in (None, "anna"):
            version = debian.run("batchdesk", "--version", user=user)
            assert version.stdout.strip() == f"batchdesk {__version__}", version.stderr
            # No display, as on a render node or in CI: the window opens offscreen.
            checked = debian.run("batchdesk", "--self-test", user=user, timeout=300)
            assert checked.returncode == 0, f"as {user or 'root'}: {checked.stderr}"
            assert checked.stdout.startswith("self-test passed: PL_DXB_"), checked.stdout
            assert debian.processes() == [], f"as {user or 'root'}, its server was left running"
        # Running as root used the package's account and made no other.
        assert accounts(debian) == accounts_before | {"pgserver": pgserver}
        assert debian.host_path("/root").stat().st_mode & 0o777 == 0o700  # still private

        tool_environment = environment_of_an_external_tool(debian)
        leaked = sorted(name for name in tool_environment if name.startswith(BUNDLE_ONLY))
        assert leaked == [], f"a pipeline's external tool was given the bundle's {leaked}"

        desktop = debian.host_path("/usr/share/applications/batchdesk.desktop").read_text()
        assert "\nExec=batchdesk\n" in desktop
        assert "\nIcon=batchdesk\n" in desktop
        # systemd checks the worker's unit against the installed program (it does not run here).
        unit = "/lib/systemd/system/batchdesk-worker@main.service"
        verified = debian.run("systemd-analyze", "verify", unit)
        assert verified.returncode == 0, verified.stderr
    finally:
        purged = purge(debian)  # as an admin removing it for good: not even dpkg's record
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not installed(debian)
    assert left_behind(debian) == []
    assert accounts(debian) == accounts_before  # pgserver went with the package
    assert "pgserver" not in groups(debian)
    assert opt.is_dir(), "purging the package removed /opt, which it does not own"


def test_a_pgserver_account_that_was_there_before_is_left_alone(
    deb: Path, debian: DebianRoot
) -> None:
    made = debian.run("useradd", "--system", "--shell", "/bin/sh", "pgserver")
    assert made.returncode == 0, made.stderr
    before = accounts(debian)
    try:
        done = install(debian, deb)
        assert done.returncode == 0, done.stdout + done.stderr
        assert accounts(debian) == before
        purged = purge(debian)
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert accounts(debian) == before  # not the package's to remove
    finally:
        if installed(debian):
            purge(debian)
        debian.run("userdel", "pgserver")


def environment_of_an_external_tool(debian: DebianRoot) -> set[str]:
    """Run a job whose external step records its environment; return the variables' names."""
    home = "/tmp/tool"
    env = {"BATCHDESK_HOME": f"{home}/batchdesk"}
    inputs = debian.host_path(f"{home}/in")
    inputs.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(inputs / "PL_DXB1_env.png")
    recorded = f"{home}/environment.txt"
    worker = subprocess.Popen(
        debian.command(["batchdesk", "worker", "--threads", "1"], env=env),
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
        record = ["/bin/sh", "-c", RECORD_ENVIRONMENT, "{input}", "{output}", recorded]
        steps = [{"op": "external", "args": record}, {"op": "output", "format": "png"}]
        socket_dir = debian.host_path(f"{home}/batchdesk/data/postgres")
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="batchdesk") as conn:
            conn.execute(
                "INSERT INTO pipelines (name, description, steps) VALUES ('env', 'env', %s)",
                (json.dumps(steps),),
            )
        submitted = debian.run("batchdesk", "submit", f"{home}/in", "-p", "env", env=env)
        assert submitted.returncode == 0, submitted.stderr
        deadline = time.monotonic() + 120
        while not debian.host_path(recorded).exists():
            assert time.monotonic() < deadline, "the external step never ran"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=120)
    text = debian.host_path(recorded).read_text()
    shutil.rmtree(debian.host_path(home))
    return {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
