#!/usr/bin/env sh
# Install a Debian package the tests need when its command is missing:
# redis-server (default) or stunnel4 (the TLS proxy of the Kafka TLS tests).
set -eu
PACKAGE="${1:-redis-server}"
if command -v "$PACKAGE" >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing $PACKAGE (apt-get)..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$PACKAGE" >/dev/null
command -v "$PACKAGE" >/dev/null 2>&1 || { echo "$PACKAGE could not be installed" >&2; exit 1; }
