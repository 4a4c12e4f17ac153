"""A minimal Debian 12 root folder to chroot into, as a freshly installed machine has it.

debootstrap's minimal system plus systemd, the init of every Debian 12 workstation: no
desktop, no procps, no python3 (tests install what they need, with apt, as an admin would).

It is made once (about a minute and 200 MB from the mirror) and the result is kept as
a tar file in CACHE, so later runs unpack it in seconds. Every command runs in a mount
namespace of its own, with /proc, /dev and the package caches mounted only there: when the
command ends, its mounts go with it, whatever happened, and the host's /dev is never touched.
"""

import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

SUITE = "bookworm"
# What this machine's apt sources use; a studio's own mirror can be given instead.
MIRROR = os.environ.get("BATCHDESK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("BATCHDESK_TEST_CACHE", "/var/cache/batchdesk-test"))
# Debian 12 gets point releases every two months or so; a root older than this is made again.
CACHE_DAYS = 30
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Run as root by `unshare --mount`: mount what a chroot needs in this namespace only, then enter.
#   $1 root, $2 user ("" for root), then "inside=host" folders to bind until "--", then the command.
_ENTER = r"""
set -eu
root=$1 user=$2
shift 2
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"                 # device nodes, not the host's /dev/shm or pts
mount -t tmpfs -o mode=1777 shm "$root/dev/shm"   # PostgreSQL's shared memory
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
while [ "$1" != "--" ]; do
    inside=${1%%=*} host=${1#*=}
    mkdir -p "$root$inside"
    mount --bind "$host" "$root$inside"
    shift
done
shift
if [ -n "$user" ]; then
    exec chroot "$root" setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
fi
exec chroot "$root" "$@"
"""


class DebianRoot:
    """A Debian root folder on this machine; `run` executes commands inside it."""

    def __init__(self, path: Path, caches: Mapping[str, Path] | None = None) -> None:
        self.path = path
        self.caches = dict(caches or {})

    def host_path(self, inside: str | Path) -> Path:
        """Return where a path inside the root is on this machine."""
        return self.path / str(inside).lstrip("/")

    def command(
        self,
        argv: Sequence[str | Path],
        user: str | None = None,
        env: Mapping[str, str] = {},
        cwd: str = "/",
    ) -> list[str]:
        """Return the host command line that runs `argv` in the root, as `user` or root."""
        home = "/root" if user is None else f"/home/{user}"
        environment = {
            "PATH": PATH,
            "HOME": home,
            "USER": user or "root",
            "LOGNAME": user or "root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
        } | dict(env)
        caches = [f"{inside}={host}" for inside, host in self.caches.items()]
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", _ENTER, "enter", str(self.path), user or "", *caches, "--",
            "/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd,
            "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in environment.items()),
            *(str(arg) for arg in argv),
        ]  # fmt: skip

    def run(
        self,
        *argv: str | Path,
        user: str | None = None,
        env: Mapping[str, str] = {},
        cwd: str = "/",
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the root and return what it did (output captured, never raises)."""
        return subprocess.run(
            self.command(argv, user, env, cwd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def processes(self) -> list[int]:
        """Return the ids of processes running inside this root."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if Path(os.readlink(entry / "root")) == self.path:
                        found.append(int(entry.name))
                except OSError:  # gone, or not ours to see
                    pass
        return found


@contextmanager
def fresh_debian(where: Path) -> Iterator[DebianRoot]:
    """Unpack a fresh minimal Debian 12 into `where` (made here); remove it afterwards.

    Packages apt downloads inside are kept in CACHE for the next run; everything else goes.
    Processes still running inside at the end are killed first (a test that failed midway).
    """
    tar = cached_root_tar()
    where.mkdir()
    subprocess.run(["tar", "-C", where, "--numeric-owner", "--xattrs", "-xpf", tar], check=True)
    archives = CACHE / "apt-archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    root = DebianRoot(where, {"/var/cache/apt/archives": archives})
    try:
        yield root
    finally:
        for pid in root.processes():
            with suppress(ProcessLookupError):
                os.kill(pid, 9)
        subprocess.run(["rm", "-rf", "--one-file-system", str(where)], check=False)


def cached_root_tar() -> Path:
    """Return the cached tar of a debootstrapped minimal Debian 12, making it if needed."""
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tar = CACHE / f"debian-{SUITE}-{arch}-minbase-systemd.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run making it at the same time: wait for it
        if tar.exists() and time.time() - tar.stat().st_mtime < CACHE_DAYS * 86400:
            return tar
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="debootstrap-") as temp:
            target = Path(temp) / "root"
            debootstrap = ["debootstrap", "--variant=minbase", "--include=systemd"]
            made = subprocess.run(
                [*debootstrap, f"--arch={arch}", SUITE, target, MIRROR],
                capture_output=True,
                text=True,
                check=False,
            )
            if made.returncode != 0:
                raise RuntimeError(f"debootstrap failed:\n{made.stdout[-3000:]}{made.stderr}")
            # Its downloads are in the root's own cache; the apt cache is shared instead.
            subprocess.run(["rm", "-rf", target / "var/cache/apt/archives"], check=True)
            (target / "var/cache/apt/archives/partial").mkdir(parents=True)
            partial = Path(temp) / "root.tar"
            subprocess.run(
                ["tar", "-C", target, "--numeric-owner", "--xattrs", "-cf", partial, "."],
                check=True,
            )
            partial.rename(tar)
        return tar
