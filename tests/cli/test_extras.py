"""cli/extras.py through the command line's boundary (cli/guard.py): a module of the ``server`` extra that is not
installed is one ``error:`` line saying what to install, exit code 5; any other missing module stays a bug.
(The real case, a venv without the extra, is tests/packaging/test_wheel.py.)"""

from __future__ import annotations

import pytest

from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.extras import missing_extra
from gpchannel.cli.guard import run_guarded


def _raise(exc: BaseException) -> None:
    raise exc


def test_a_missing_server_module_says_what_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_guarded(lambda: _raise(ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy.orm")))
    assert code == ExitCode.TRANSPORT
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: this command needs the OTA server's dependencies (sqlalchemy is not installed): "
        "pip install 'gpchannel[server]'"
    ]


def test_other_missing_modules_are_not_an_extra() -> None:
    assert missing_extra(ModuleNotFoundError("x", name="nosuchmodule")) is None
    assert missing_extra(ImportError("x")) is None
    assert run_guarded(lambda: _raise(ModuleNotFoundError("x", name="nosuchmodule"))) == ExitCode.INTERNAL
