"""``gpchannel demo mitm``: the whole matrix in memory, well under a minute, as tables or JSON."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from gpchannel.cli.main import cli


def test_the_whole_matrix_as_json_in_under_a_minute() -> None:
    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["demo", "mitm", "--json"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    cells = json.loads(result.output)["cells"]
    assert len(cells) == 9 * 4 + 9 * 5 + 7 * 4
    assert elapsed < 60
    read_33 = next(c for c in cells if (c["scp"], c["level"], c["attack"]) == ("03", "33", "read"))
    assert read_33["stopped_by"] == "confidentiality" and not any(read_33["message_visible"].values())


def test_a_table_and_a_trace_marking_the_tampered_exchange() -> None:
    args = ["demo", "mitm", "--scp", "03", "--level", "01", "--attack", "modify-data", "--trace", "--message", "Hi"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "SCP03, security level 01" in result.output and "'Hi' -> 'Ji'" in result.output
    assert "stopped: integrity" in result.output
    assert "!!" in result.output and "first failure" in result.output  # the trace inspector's mark
