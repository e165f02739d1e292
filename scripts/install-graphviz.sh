#!/usr/bin/env bash
# Install Graphviz's `dot` program (used to render computation graphs) if it is missing.
# It uses the system package manager where it can; otherwise it says what to do and still
# succeeds, since everything but rendering works without `dot`.
set -u
if command -v dot >/dev/null 2>&1; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
fi
if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq graphviz >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        $sudo dnf install -y -q graphviz
    elif command -v apk >/dev/null 2>&1; then
        $sudo apk add -q graphviz
    fi
elif command -v brew >/dev/null 2>&1; then
    brew install graphviz
fi
if ! command -v dot >/dev/null 2>&1; then
    echo "note: Graphviz's 'dot' program is not installed and could not be installed here;" >&2
    echo "      graph rendering tests will be skipped. Install it with your package manager" >&2
    echo "      (e.g. 'apt-get install graphviz' or 'brew install graphviz')." >&2
fi
exit 0
