"""A folder opened once, its files written whole or not at all through its descriptor, for
`python -m gateway claim` run as root into folders another user may own (gateway/claim.py).

Every file is made under a fresh random name that cannot exist yet (O_EXCL|O_NOFOLLOW,
inside the opened folder), given its mode and owner through its descriptor, then renamed
over the name (a rename replaces a link, never its target). Nothing is chowned or chmodded
by path.
"""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import suppress
from pathlib import Path


class UnsafeFolder(Exception):
    """A folder not to write into (a link, or not root's alone); the message is for the
    installer."""


class OpenedFolder:
    """A folder opened once. Its files are made and renamed relative to its descriptor, so
    neither a symbolic link planted at a file's name (or at the temporary name) nor a folder
    swapped after the check is ever followed."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def opened(cls, path: Path) -> OpenedFolder:
        """The folder `path` (made when missing): chosen by whoever runs the claim."""
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path)

    def __enter__(self) -> OpenedFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
            finally:
                os.close(self.fd)
                self.fd = -1

    def agent(self) -> tuple[int, int] | None:
        """Run as root into a folder of another user (the agent's): that user and group,
        who get the files the agent replaces itself (config/, site.yaml)."""
        if os.geteuid() != 0:
            return None
        st = os.fstat(self.fd)
        return None if st.st_uid == 0 else (st.st_uid, st.st_gid)

    def check_private(self) -> None:
        """Run as root, secrets go only where no other user can rename or replace them."""
        if os.geteuid() != 0:
            return
        st = os.fstat(self.fd)
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise UnsafeFolder(
                f"{self.path} 不属于 root 或其他用户可写，凭据不写入此处 / {self.path} is not "
                "root's alone (another user owns it or may write in it): the credentials are "
                "not written there — use a folder of root's (--secrets-dir, --env-file)"
            )

    def subfolder(self, name: str, *, owner: tuple[int, int] | None) -> OpenedFolder:
        """`name` inside this folder, made when missing; a link or a file there is refused."""
        with suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=self.fd)
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd
            )
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise UnsafeFolder(
                f"{self.path / name} 不是文件夹（符号链接？），拒绝写入 / {self.path / name} is "
                "not a folder (a symbolic link?): refusing to write through it — remove it "
                "and claim again"
            ) from exc
        folder = OpenedFolder(fd, self.path / name)
        if owner is not None:
            os.fchown(fd, *owner)
        return folder

    def write(
        self, name: str, text: str, mode: int, *, owner: tuple[int, int] | None = None
    ) -> None:
        """`name` whole or not at all, with `mode` (and `owner`) before it has any content."""
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                if owner is not None:
                    os.fchown(out.fileno(), *owner)
                os.fchmod(out.fileno(), mode)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise

    def keep(
        self, current: str, previous: str, text: str, mode: int, *, owner: tuple[int, int] | None
    ) -> None:
        """As ConfigStore.keep: the file in force (whatever it is) becomes the previous one."""
        with suppress(FileNotFoundError):
            os.replace(current, previous, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        self.write(current, text, mode, owner=owner)
