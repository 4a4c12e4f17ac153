#!/usr/bin/env bash
# Build batchdesk for macOS: dist/batchdesk.app (PyInstaller) and dist/batchdesk-VERSION.dmg.
# UNTESTED: written for macOS 11+ with Python 3.11+ (python.org or Homebrew) and Xcode's
# command-line tools (iconutil, hdiutil); this project's machines are Linux. Not signed or
# notarised: Gatekeeper asks the first time (right-click, Open) until a Developer ID is added.
set -euo pipefail
cd "$(dirname "$0")/../.."

[[ -x build/venv/bin/python ]] || python3 -m venv build/venv
build/venv/bin/python -m pip install --quiet -r packaging/requirements.txt
build/venv/bin/python -m pip install --quiet .
version=$(build/venv/bin/python -c 'import batchdesk; print(batchdesk.__version__)')

# The app icon from the committed PNGs.
iconset=build/batchdesk.iconset
rm -rf "$iconset" && mkdir -p "$iconset"
for size in 16 32 128 256 512; do
    cp "resources/icons/batchdesk-$size.png" "$iconset/icon_${size}x${size}.png"
done
cp resources/icons/batchdesk-32.png "$iconset/icon_16x16@2x.png"
cp resources/icons/batchdesk-64.png "$iconset/icon_32x32@2x.png"
cp resources/icons/batchdesk-256.png "$iconset/icon_128x128@2x.png"
cp resources/icons/batchdesk-512.png "$iconset/icon_256x256@2x.png"
iconutil -c icns "$iconset" -o build/batchdesk.icns

build/venv/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller \
    packaging/batchdesk.spec
dist/batchdesk.app/Contents/MacOS/batchdesk --version

dmg="dist/batchdesk-$version.dmg"
rm -f "$dmg"
staging=build/dmg && rm -rf "$staging" && mkdir -p "$staging"
cp -R dist/batchdesk.app "$staging/"
ln -s /Applications "$staging/Applications"
hdiutil create -volname "batchdesk $version" -srcfolder "$staging" -ov -format UDZO "$dmg"
echo "disk image: $dmg"
