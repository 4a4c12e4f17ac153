#!/usr/bin/env bash
# Build batchdesk's installers from this checkout:
#   dist/batchdesk/                     the PyInstaller one-folder bundle (any OS; spec below)
#   dist/batchdesk_VERSION_ARCH.deb     on Debian/Ubuntu: the bundle as a package
#
#   packaging/build.sh            bundle + .deb
#   packaging/build.sh --bundle   the bundle only
#
# Needs Python 3.11+ and the network (PyPI) the first time; python3-venv and binutils are installed
# when missing if it runs as root with apt-get; the build tools go into build/venv, never into .venv.
# Prints the sizes and the time it took.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bundle_only=false
[[ "${1:-}" == "--bundle" ]] && bundle_only=true

if [[ ! -x build/venv/bin/python ]]; then
    echo "Creating build/venv for the build tools..." >&2
    scripts/create-venv build/venv  # installs python3-venv first where it is missing (root)
fi
# PyInstaller reads the bundle's libraries with objdump and bundles Python's shared library.
needed=()
command -v objdump >/dev/null || needed+=(binutils)
read -r libdir libpython python_version < <(build/venv/bin/python -c 'import sys, sysconfig as s
print(s.get_config_var("LIBDIR"), s.get_config_var("INSTSONAME"), "%d.%d" % sys.version_info[:2])')
[[ -e "$libdir/$libpython" ]] || PATH="$PATH:/sbin:/usr/sbin" ldconfig -p | grep -qF "$libpython " \
    || needed+=("libpython$python_version")
(( ${#needed[@]} == 0 )) || scripts/apt-install "PyInstaller needs" "${needed[@]}"
echo "Installing PyInstaller and batchdesk (from this checkout) into build/venv..." >&2
build/venv/bin/python -m pip install --quiet --disable-pip-version-check -r packaging/requirements.txt
# Not editable: the bundle must hold the package as installed, with its data files.
# setuptools builds in build/lib and never deletes there: a module removed from src/ would
# still be installed (and bundled) from an earlier build's copy.
rm -rf build/lib build/bdist.*
build/venv/bin/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps .
build/venv/bin/python -m pip install --quiet --disable-pip-version-check .
version=$(build/venv/bin/python -c 'import batchdesk; print(batchdesk.__version__)')

echo "Bundling batchdesk $version with PyInstaller..." >&2
rm -rf dist/batchdesk build/pyinstaller
build/venv/bin/pyinstaller --noconfirm --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/batchdesk.spec
dist/batchdesk/batchdesk --version >/dev/null  # it starts at all

report() {
    echo "bundle: dist/batchdesk, $(du -sh dist/batchdesk | cut -f1)" >&2
    [[ -n "${1:-}" ]] && echo "package: $1, $(du -h "$1" | cut -f1)" >&2
    echo "built in $((SECONDS - started)) s" >&2
}

if $bundle_only || ! command -v dpkg-deb >/dev/null; then
    $bundle_only || echo "No dpkg-deb here: the bundle is built, the .deb is not." >&2
    report
    exit 0
fi

arch=$(dpkg --print-architecture)
root=build/deb/root
rm -rf build/deb
mkdir -p "$root/DEBIAN" "$root/usr/lib" "$root/usr/bin" "$root/usr/share/applications" \
    "$root/lib/systemd/system" "$root/usr/share/doc/batchdesk/examples"
# In /usr/lib, not /opt: dpkg removes the folders a package shipped once they are empty, and
# no Debian package owns /opt, so purging one that ships /opt/x removes a pre-existing empty /opt.
cp -a dist/batchdesk "$root/usr/lib/batchdesk"
install -m 755 packaging/debian/batchdesk.sh "$root/usr/bin/batchdesk"
install -m 644 resources/batchdesk.desktop "$root/usr/share/applications/batchdesk.desktop"
for png in resources/icons/batchdesk-*.png; do
    size=${png##*-}; size=${size%.png}
    install -D -m 644 "$png" "$root/usr/share/icons/hicolor/${size}x${size}/apps/batchdesk.png"
done
install -D -m 644 src/batchdesk/gui/icons/batchdesk.svg \
    "$root/usr/share/icons/hicolor/scalable/apps/batchdesk.svg"
install -m 644 packaging/systemd/batchdesk-worker@.service "$root/lib/systemd/system/"
install -m 644 packaging/systemd/worker.env "$root/usr/share/doc/batchdesk/examples/worker.env"
install -m 644 README.md CHANGELOG.md "$root/usr/share/doc/batchdesk/"
install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
    "$root/DEBIAN/"
size_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE_KB@/$size_kb/" \
    packaging/debian/control.in > "$root/DEBIAN/control"

deb="dist/batchdesk_${version}_${arch}.deb"
# zstd: seconds instead of minutes for xz; dpkg on Debian 12 and Ubuntu 21.10+ reads it.
dpkg-deb --root-owner-group -Zzstd --build "$root" "$deb" >/dev/null
report "$deb"
