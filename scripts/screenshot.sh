#!/usr/bin/env bash
# Screenshots for the README: the real window on a virtual screen over generated demo batches.
#   scripts/screenshot.sh [FOLDER]      (default docs/screenshots)
# Needs Xvfb (apt-get install xvfb); as root it is installed when missing. Each run starts from
# fresh temporary homes (embedded database), so the pictures never show anyone's real work.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
scripts/install >/dev/null

if ! command -v Xvfb >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y -qq xvfb >/dev/null
    else
        echo "Xvfb is needed for screenshots: sudo apt-get install xvfb" >&2
        exit 1
    fi
fi

work=$(mktemp -d /tmp/batchdesk-shots.XXXXXX)
display=":$((90 + RANDOM % 100))"
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1

export DISPLAY="$display" QT_QPA_PLATFORM=xcb QT_SCALE_FACTOR=1
for theme in "" --dark; do
    BATCHDESK_HOME="$work/demo$theme" .venv/bin/python scripts/demo_data.py >/dev/null
    BATCHDESK_HOME="$work/empty$theme" .venv/bin/python scripts/screenshots.py "$out" --empty $theme
    BATCHDESK_HOME="$work/demo$theme" .venv/bin/python scripts/screenshots.py "$out" $theme
done
