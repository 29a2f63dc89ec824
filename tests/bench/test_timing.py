"""bench.timing: how a figure is printed beside its aim."""

from __future__ import annotations

import pytest
from bench.timing import Comparison, aim_note, ratio_text


@pytest.mark.parametrize(
    ("figure", "aim", "text"),
    [
        (0.898, 0.9, "0.898"),  # two decimals would print 0.90 beside "below aim"
        (0.6996, 0.7, "0.6996"),
        (0.904, 0.9, "0.90"),
        (0.7, 0.7, "0.70"),
        (1.2345, None, "1.23"),
    ],
)
def test_a_ratio_is_never_rounded_across_its_aim(figure: float, aim: float | None, text: str) -> None:
    assert ratio_text(figure, aim) == text
    if aim is not None:
        assert (float(text) >= aim) == (figure >= aim)


def test_the_line_says_below_aim_with_the_figure_that_is() -> None:
    line = Comparison("SELECT", 898.0, "null card", 1000.0, aim=0.9).line()
    assert "ratio 0.898" in line and aim_note(0.898, 0.9) in line and "below aim" in line
