"""The worked example in gpchannel.trace's docstring runs as written."""

from __future__ import annotations

import doctest

import gpchannel.trace


def test_package_docstring_example() -> None:
    result = doctest.testmod(gpchannel.trace, optionflags=doctest.ELLIPSIS, raise_on_error=False, verbose=False)
    assert result.attempted >= 6
    assert result.failed == 0
