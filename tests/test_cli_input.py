"""Reading bulk input: every physical line is accounted for (pure: no service, no sockets)."""

from __future__ import annotations

import io

import pytest

from tracker_links._cli._errors import UsageError
from tracker_links._cli._input import QUOTED_LINES, Input, Row, read_rows

HEADER = "source,relationship,target\n"


def read(text: str, fmt: str = "auto") -> tuple[Input, list[Row]]:
    data = read_rows(io.StringIO(text, newline=""), fmt, "in.csv")
    rows = list(data.rows)
    assert data.count.accounted == data.count.read  # every line went somewhere
    return data, rows


def pair(i: int) -> str:
    return f"TEST-{i},relates,TEST-{i + 1}\n"


def test_a_stray_quote_loses_only_its_own_line() -> None:
    # 20,000 lines: the header, then 19,999 pairs; line 100 opens a quote it never closes.
    lines = [HEADER] + [pair(i) for i in range(2, 20_001)]
    lines[99] = '"' + lines[99]
    data, rows = read("".join(lines))
    count = data.count
    assert count.read == 20_000
    assert (count.items, count.bad, count.header, count.blank, count.continued) == (
        19_998,
        1,
        1,
        0,
        0,
    )
    bad = [r for r in rows if r.spec is None]
    assert [r.line for r in bad] == [100]
    assert f"does not close within {QUOTED_LINES} lines" in (bad[0].reason or "")
    good = [r for r in rows if r.spec is not None]
    assert [r.line for r in good] == [*range(2, 100), *range(101, 20_001)]
    # Each line after the stray quote is its own item, with its own pair.
    assert all(r.spec is not None and r.spec.source == f"TEST-{r.line}" for r in good)
    assert count.text() == "20,000 lines read: 19,998 items, 1 bad line, 1 blank/header"


def test_a_quoted_field_may_run_across_a_few_lines() -> None:
    text = HEADER + 'TEST-1,"relates\n\n",TEST-2\n' + pair(5)
    data, rows = read(text)
    assert [(r.line, r.spec is not None) for r in rows] == [(2, True), (5, True)]
    assert data.count.continued == 2
    assert data.count.text().endswith("2 continuing a quoted field")


@pytest.mark.parametrize(
    ("extra", "closes"),
    [(QUOTED_LINES - 1, True), (QUOTED_LINES, False)],
)
def test_the_limit_of_lines_for_one_quoted_field(extra: int, closes: bool) -> None:
    # The field opens on line 2 and closes `extra` lines further on (1 + extra lines in all).
    text = HEADER + 'TEST-1,"relates' + "\n" * extra + '",TEST-2\n' + pair(7)
    data, rows = read(text)
    if closes:
        assert [r.line for r in rows] == [2, 3 + extra]
        assert all(r.spec is not None for r in rows)
        assert data.count.continued == extra
    else:
        # Line 2 is bad; the lines after it are read on their own: blank, then the closing
        # line (a bad line of its own, as its quote now opens a field), then the pair.
        assert rows[0].line == 2
        assert rows[0].spec is None
        assert rows[-1].spec is not None
        assert rows[-1].line == 3 + extra
        assert data.count.blank == extra - 1
        assert data.count.continued == 0


def test_a_quote_still_open_at_the_end_of_the_file() -> None:
    data, rows = read(HEADER + pair(1) + '"TEST-3,relates,TEST-4\n' + pair(5))
    assert [(r.line, r.spec is not None) for r in rows] == [(2, True), (3, False), (4, True)]
    assert data.count.bad == 1
    data, rows = read(HEADER + '"TEST-3,relates,TEST-4')  # no newline at the end either
    assert [(r.line, r.spec is not None) for r in rows] == [(2, False)]


def test_blank_lines_and_bad_lines_are_counted() -> None:
    text = "\n" + HEADER + "\n" + pair(1) + "TEST-1,blocks,TEST-2\n,,\n" + pair(3)
    data, rows = read(text)
    assert data.count.read == 7
    assert (data.count.items, data.count.bad, data.count.blank, data.count.header) == (2, 1, 3, 1)
    assert [r.line for r in rows] == [4, 5, 7]


def test_jsonl_lines_are_counted() -> None:
    text = '{"source":"TEST-1","relationship":"relates","target":"TEST-2"}\n\nnot json\n'
    data, rows = read(text)
    assert data.fmt == "jsonl"
    assert (data.count.read, data.count.items, data.count.bad, data.count.blank) == (3, 1, 1, 1)
    assert [r.line for r in rows] == [1, 3]


def test_an_unreadable_header_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no usable header: line 1"):
        read('"source,relationship,target\n' + pair(1))
