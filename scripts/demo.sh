#!/usr/bin/env bash
# The main demo: a host and a card complete real secure sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m gpchannel.demo "$@"
