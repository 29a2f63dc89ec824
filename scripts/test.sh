#!/usr/bin/env bash
# Runs the test suite. Starts pcscd (with vsmartcard's vpcd driver) and the throwaway PostgreSQL cluster first so
# PC/SC and database tests use the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/pcscd.sh ]; then
    ./scripts/pcscd.sh start || echo "test: pcscd could not be started; PC/SC tests will say why they skip"
fi
if [ -x scripts/postgres.sh ]; then
    ./scripts/postgres.sh start || echo "test: PostgreSQL could not be started; database tests will say why they skip"
fi
exec .venv/bin/python -m pytest -q "$@"
