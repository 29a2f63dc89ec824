"""The exit code table (cli/exit_codes.py) and the last-resort boundary (cli/guard.py)."""

from __future__ import annotations

import pytest

from gpchannel.cli.exit_codes import ERROR_EXIT_CODES, MEANING, ExitCode, epilog, exit_code_for
from gpchannel.cli.guard import run_guarded
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    DecodeError,
    FileNotFound,
    GPChannelError,
    InventoryError,
    KeyNotFound,
    ProfileError,
    SmppStatusError,
    TlsError,
    UnsupportedError,
)


def test_every_code_is_explained_once() -> None:
    assert set(MEANING) == set(ExitCode)
    text = epilog()
    assert [line.split()[0] for line in text.splitlines()[2:]] == [str(int(c)) for c in ExitCode]
    assert len({int(c) for c in ExitCode}) == len(ExitCode)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuthenticationError("x"), ExitCode.AUTHENTICATION),
        (CardStatusError(0x6A88), ExitCode.CARD_REFUSED),
        (FileNotFound(), ExitCode.CARD_REFUSED),
        (TlsError("x", "handshake_failure"), ExitCode.TRANSPORT),  # the most specific listed base wins
        (SmppStatusError(8), ExitCode.TRANSPORT),
        (UnsupportedError("x"), ExitCode.TRANSPORT),
        (ProfileError("x"), ExitCode.USAGE),
        (InventoryError("x", line=2), ExitCode.USAGE),  # a DecodeError, listed itself
        (DecodeError("x"), ExitCode.FAILURE),
        (KeyNotFound("x"), ExitCode.FAILURE),  # through GPChannelError
        (ConnectionRefusedError(111, "refused"), ExitCode.TRANSPORT),
        (PermissionError(13, "denied"), ExitCode.FAILURE),
        (RuntimeError("x"), None),
        (ValueError("x"), None),  # not the project's: a bug, unless a command says what it means
    ],
)
def test_error_class_to_code(error: BaseException, code: ExitCode | None) -> None:
    assert exit_code_for(error) == code


def test_every_listed_class_maps_to_its_own_code() -> None:
    for cls, code in ERROR_EXIT_CODES.items():
        assert exit_code_for(cls.__new__(cls)) is code


def _raise(error: BaseException) -> None:
    raise error


def test_an_unexpected_exception_is_one_line_and_code_70(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GPCHANNEL_DEBUG", raising=False)
    assert run_guarded(lambda: _raise(RuntimeError("boom"))) == ExitCode.INTERNAL
    assert int(ExitCode.INTERNAL) == 70  # EX_SOFTWARE
    err = capsys.readouterr().err
    assert err == "error: internal error: RuntimeError: boom (set GPCHANNEL_DEBUG=1 for the traceback)\n"
    monkeypatch.setenv("GPCHANNEL_DEBUG", "1")
    assert run_guarded(lambda: _raise(KeyError("k"))) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == "error: internal error: KeyError: 'k' (set GPCHANNEL_DEBUG=1 for the traceback)"


def test_project_errors_and_interrupts(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_guarded(lambda: _raise(ProfileError("profile x.toml: isd.scp: 'zz' is not 01"))) == ExitCode.USAGE
    assert capsys.readouterr().err == "error: profile x.toml: isd.scp: 'zz' is not 01\n"
    assert run_guarded(lambda: _raise(GPChannelError())) == ExitCode.FAILURE
    assert capsys.readouterr().err == "error: GPChannelError\n"
    assert run_guarded(lambda: _raise(KeyboardInterrupt())) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err == "error: interrupted\n"
    assert run_guarded(lambda: None) == ExitCode.OK
    assert run_guarded(lambda: 3) == 3  # click's code of an explicit ctx.exit(3)
    with pytest.raises(SystemExit):
        run_guarded(lambda: _raise(SystemExit(4)))


def test_the_readme_lists_the_same_codes() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    cells = [line.split("|")[1:3] for line in readme.splitlines() if line.startswith("|")]
    rows = {int(code): text.strip().replace("`", "") for code, text in cells if code.strip().isdigit()}
    assert rows == {int(c): m for c, m in MEANING.items()}
