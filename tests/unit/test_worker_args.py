"""The worker's command line, parsed without argparse (its import cost a worker ~10 ms of start-up)."""

from __future__ import annotations

import pytest

from taskmill.workers.__main__ import parse_args


def test_the_supervisors_command_line_is_understood_in_either_spelling() -> None:
    args = parse_args(["--fd", "5", "--parent-pid=7", "--slot-fd", "9", "--bell-fd=11"])
    assert (args.fd, args.parent_pid, args.slot_fd, args.bell_fd) == (5, 7, 9, 11)
    args = parse_args(["--fd=3"])
    assert (args.fd, args.parent_pid, args.slot_fd, args.bell_fd) == (3, 0, -1, -1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "--fd is required"), (["--fd"], "--fd takes an integer"), (["--fd", "x"], "--fd takes an integer"),
     (["--fd", "3", "--verbose"], "unknown argument '--verbose'")],
)  # fmt: skip
def test_a_bad_command_line_exits_with_a_message(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)
