#!/usr/bin/env bash
# Runs the test suite. Starts pcscd (with vsmartcard's vpcd driver) first so PC/SC tests use the real stack.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/pcscd.sh ]; then
    ./scripts/pcscd.sh start || echo "test: pcscd could not be started; PC/SC tests will say why they skip"
fi
exec .venv/bin/python -m pytest -q "$@"
