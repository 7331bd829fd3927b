"""Refusals before the daemon opens anything (reliability.md §3).

Write access to the database is submit privilege and write access to the config is code execution as the
daemon's user, so the daemon refuses to start on files others can write, on a network filesystem (where
SQLite's locks and WAL do not work), or as root unless told to.
"""

from __future__ import annotations

import os
import stat

from ..errors import TaskmillError

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "fuse.glusterfs",
    "fuse.sshfs", "lustre", "gpfs", "beegfs", "davfs", "fuse.s3fs",
})  # fmt: skip


class UnsafeEnvironment(TaskmillError):
    """The daemon refuses to run: root without --allow-root, unsafe permissions, or a network filesystem."""


def check_user(allow_root: bool) -> None:
    if os.geteuid() == 0 and not allow_root:
        raise UnsafeEnvironment(
            "refusing to run as root: run the daemon as a dedicated user (see the systemd unit in "
            "docs/server.md), or pass --allow-root"
        )


def check_config_file(path: str) -> None:
    st = os.stat(path)
    if st.st_mode & stat.S_IWOTH:
        raise UnsafeEnvironment(f"{path} is writable by other users (anyone could run code as the daemon)")


def filesystem_type(path: str) -> str | None:
    """The type of the mount holding ``path``, from /proc/self/mountinfo (None where unavailable)."""
    real = os.path.realpath(path)
    best, fstype = "", None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                mount = fields[4].replace("\\040", " ")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, right.split()[0]
    except OSError:
        return None
    return fstype


def prepare_store_path(db_path: str) -> None:
    """Create the database directory (mode 0750 under the daemon's umask) and vet the existing files."""
    directory = os.path.dirname(os.path.abspath(db_path))
    os.makedirs(directory, mode=0o750, exist_ok=True)
    st = os.stat(directory)
    if st.st_mode & stat.S_IWOTH:
        raise UnsafeEnvironment(f"database directory {directory} is world-writable; use a directory of its own")
    fstype = filesystem_type(directory)
    if fstype in NETWORK_FILESYSTEMS:
        raise UnsafeEnvironment(
            f"database directory {directory} is on a network filesystem ({fstype}); SQLite's locking and WAL "
            "need a local disk"
        )
    me = os.geteuid()
    for path in (db_path, db_path + "-wal", db_path + "-shm"):
        try:
            lst = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(lst.st_mode):
            raise UnsafeEnvironment(f"{path} is a symbolic link; point the config at the real file")
        if lst.st_mode & stat.S_IWOTH:
            raise UnsafeEnvironment(f"{path} is world-writable (anyone could submit tasks); chmod o-w it")
        if lst.st_nlink > 1:
            raise UnsafeEnvironment(f"{path} has {lst.st_nlink} hard links; SQLite needs exactly one name")
        if me != 0 and lst.st_uid != me:
            raise UnsafeEnvironment(f"{path} is owned by uid {lst.st_uid}, not the daemon's uid {me}")
