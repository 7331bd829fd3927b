"""Worker process entry point. Exit codes are part of the contract with the supervisor (see EXIT_*)."""

from __future__ import annotations

import os
import socket
import sys

from ..protocol import Boot, BootFailed, Ready
from ..slot import ExecutingSlot
from ..submission import Defaults
from .boot import boot, limit_address_space
from .channel import Channel
from .runner import WorkerRuntime, needs_event_loop, new_event_loop

EXIT_OK = 0
EXIT_BOOT_ERROR = 3  # user modules failed to import: the supervisor halts instead of respawning
EXIT_ORPHANED = 4  # the supervisor went away: stop at once so a successor never runs a task twice


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL us when the supervisor dies (Linux), even if an executor holds the GIL."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the supervisor died before we asked
        os._exit(EXIT_ORPHANED)


class Args:
    __slots__ = ("bell_fd", "fd", "parent_pid", "slot_fd")

    def __init__(self) -> None:
        self.fd, self.parent_pid, self.slot_fd, self.bell_fd = -1, 0, -1, -1


def parse_args(argv: list[str]) -> Args:
    """``--fd N [--parent-pid P] [--slot-fd S] [--bell-fd B]``, the command line the supervisor gives us.
    Parsed by hand: importing argparse cost a worker ~10 ms of start-up."""
    args = Args()
    names = {"--fd": "fd", "--parent-pid": "parent_pid", "--slot-fd": "slot_fd", "--bell-fd": "bell_fd"}
    i = 0
    while i < len(argv):
        name, _, value = argv[i].partition("=")
        if name not in names:
            raise SystemExit(f"python -m taskmill.workers: unknown argument {argv[i]!r}")
        if not value:
            i += 1
            value = argv[i] if i < len(argv) else ""
        try:
            setattr(args, names[name], int(value))
        except ValueError:
            raise SystemExit(f"python -m taskmill.workers: {name} takes an integer, got {value!r}") from None
        i += 1
    if args.fd < 0:
        raise SystemExit("python -m taskmill.workers: --fd is required")
    return args


def main() -> int:
    args = parse_args(sys.argv[1:])
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    sock = socket.socket(fileno=args.fd)
    sock.setblocking(True)
    channel = Channel(sock)
    msg = channel.recv()
    if not isinstance(msg, Boot):
        return EXIT_BOOT_ERROR
    if msg.umask >= 0:
        os.umask(msg.umask)
    try:
        executors, app_state, domain_state = boot(msg)
    except BaseException:
        import traceback

        channel.send(BootFailed("it could not import the domain modules:\n" + traceback.format_exc()))
        return EXIT_BOOT_ERROR
    # Before the memory limit: asyncio, uvloop and a loop map ~14 MiB, which its headroom check must count.
    loop = new_event_loop() if needs_event_loop(executors) else None
    if args.bell_fd >= 0:
        bell = socket.socket(fileno=args.bell_fd)
        if loop is None:
            bell.setblocking(True)
            channel.bell = bell
        else:  # the loop's reader thread reads every frame: no bell to listen to
            bell.close()
    if msg.memory_limit:
        problem = limit_address_space(msg.memory_limit)
        if problem:
            channel.send(BootFailed(problem))
            return EXIT_BOOT_ERROR
    runtime = WorkerRuntime(channel, executors, app_state, domain_state, loop)
    if args.slot_fd >= 0:
        runtime.slot = ExecutingSlot(args.slot_fd)
        os.close(args.slot_fd)
    runtime.default_max_retries = msg.default_max_retries
    runtime.default_timeout = msg.default_timeout
    runtime.heartbeat_interval = msg.heartbeat_interval
    if msg.switch_interval > 0:  # our own process: no one to give the old value back to
        sys.setswitchinterval(msg.switch_interval)
    runtime.requests.defaults = Defaults(ttl=msg.default_ttl, max_payload_bytes=msg.max_payload_bytes)
    runtime.install_signal_handlers()
    try:
        channel.send(Ready(os.getpid(), {t: s.is_async for t, s in executors.items()}, channel.bell is not None))
    except OSError:  # the supervisor stopped while we booted
        return EXIT_ORPHANED
    runtime.run()
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
