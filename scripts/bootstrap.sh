#!/usr/bin/env bash
# Installs everything gpchannel needs on a fresh Debian 12 machine: the apt packages (only those missing),
# then the virtual environment in .venv with gpchannel and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# libpcsclite-dev swig gcc python3-dev: to build pyscard (it has no Linux wheel); pcscd libpcsclite1 to use it.
APT_PACKAGES=(pcscd libpcsclite1 vsmartcard-vpcd libpcsclite-dev swig gcc python3-dev pkg-config python3-venv openssl
    softhsm2 postgresql libnet-smpp-perl)
APT_PACKAGES+=(chromium)  # the headless browser of the campaign page test (tests/server/test_web_browser.py)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "bootstrap: installing apt packages: ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# .[dev] holds the extras (pcsc: pyscard, server: SQLAlchemy, Alembic, psycopg, aiohttp, python-pkcs11).
.venv/bin/python -m pip install -q -e '.[dev]'
touch .venv/.bootstrapped
