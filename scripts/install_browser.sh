#!/usr/bin/env sh
# Install headless Chromium (Debian package) for the report's browser test.
# Idempotent: does nothing when a Chromium is already on PATH. Exits 0 with a message when it
# cannot install (no apt-get, not root and no passwordless sudo, no network): the browser test
# then skips and says why.
set -u

for exe in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$exe" >/dev/null 2>&1; then
        echo "install_browser: $exe already installed ($(command -v "$exe"))"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get not found; install Chromium yourself to run the browser test"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install_browser: not root and no passwordless sudo; cannot apt-get install chromium"
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium; then
    echo "install_browser: installed $(command -v chromium)"
else
    echo "install_browser: apt-get could not install chromium; the browser test will skip"
fi
exit 0
