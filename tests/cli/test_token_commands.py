"""``gpchannel server token create|list|revoke`` and ``gpchannel audit verify|export`` on a store directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from gpchannel.cli.main import cli


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_create_prints_only_the_token_then_list_and_revoke(tmp_path: Path) -> None:
    data = str(tmp_path / "srv")
    code, out = _run("server", "token", "create", "--data", data, "--name", "ops", "--scope", "read",
                     "--scope", "push-rfm", "--cards", "team-a", "--expires", "30d")  # fmt: skip
    assert code == 0 and re.fullmatch(r"gpc1_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n", out), out
    token = out.strip()
    code, out = _run("server", "token", "create", "--data", data, "--name", "ops", "--scope", "read")
    assert code == 1 and "exists already" in out
    code, out = _run("server", "token", "create", "--data", data, "--name", "x", "--scope", "read", "--expires", "1y")
    assert code == 2 and "--expires" in out
    code, out = _run("server", "token", "list", "--data", data, "--json")
    (listed,) = json.loads(out)
    assert listed["name"] == "ops" and listed["scopes"] == ["push-rfm", "read"] and listed["cards_tag"] == "team-a"
    assert listed["state"] == "active" and token not in out
    assert _run("server", "token", "revoke", "--data", data, "ops") == (0, "revoked ops\n")
    assert _run("server", "token", "revoke", "--data", data, "ops")[0] == 1
    assert json.loads(_run("server", "token", "list", "--data", data, "--json")[1])[0]["state"] == "revoked"
    code, out = _run("audit", "verify", "--data", data)
    assert code == 0 and "2 record(s)" in out
    document = json.loads(_run("audit", "export", "--data", data, "--json")[1])
    assert [r["action"] for r in document["records"]] == ["token.create", "token.revoke"]
    assert document["head"] == document["records"][-1]["hash"] and token not in json.dumps(document)


def test_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    code, out = _run("audit", "verify", "--data", str(tmp_path / "none"))
    assert code == 2 and "no server store" in out
