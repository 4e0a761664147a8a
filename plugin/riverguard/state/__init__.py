"""Durable per-series state: msgpack checkpoints that survive restarts, crashes and tampering.

:class:`StateStore` saves an :class:`~riverguard.engine.Engine`'s series to a
checkpoint file and restores them at start. A series comes back only if the
rule that now matches it has the same detector and parameters as when it was
saved. A file that cannot be used is renamed aside and riverguard starts
fresh: it never crash-loops under Telegraf. One this process may not read
(another user's) is left as it is: :class:`AccessDenied`. A state path that names a folder
means ``riverguard.msgpack`` inside it (:func:`~riverguard.config.state_path` says so, once: the store is
given the file); a folder is never renamed or replaced, and one where the checkpoint file goes is refused.
One process at a time uses a checkpoint: :meth:`StateStore.lock` takes an
exclusive ``flock`` on ``<checkpoint>.lock`` beside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import math
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from collections import Counter
from pathlib import Path
from typing import Any

from .. import __version__
from ..detectors import Detector
from ..config import STATE_FOLDER_FILE, Rule
from ..engine import Engine, newest_on_time, series_name
from ..forked import Forked, ForkedError
from ..log import RateLimit, iso_ns, plural
from ..signals import checkpointing
from .codec import StateCodecError, decode, encode
from .store import FORMAT, VERSION, Checkpoint, CheckpointError, identity, orphans, read, set_aside, temp_path, write

__all__ = [
    "list_series", "FAILURE_REPEAT", "FOLDER_FILE", "LOCK_WAIT", "AccessDenied", "CheckpointError", "LockBusy",
    "LockError", "StateStore", "check_place", "check_regular", "denied", "inspect", "open_store",
]

#: The checkpoint's name when the state path is a folder.
FOLDER_FILE = STATE_FOLDER_FILE
#: How long a second process waits for the lock (a restart's overlap) before giving up.
LOCK_WAIT = 10.0
#: While checkpoints keep failing, how often (seconds) a failure after the first is told again (``E!``).
FAILURE_REPEAT = 60.0


class LockError(Exception):
    """The checkpoint is in use by another process, or its lock file cannot be created."""


class LockBusy(LockError):
    """The checkpoint ``path`` is in use by another live process (it holds the lock): ``holder`` (its PID, or
    ``?``), ``lock_path``, and ``waited`` (seconds)."""

    def __init__(self, message: str, path: Path, holder: str, lock_path: Path, waited: float) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder
        self.lock_path = lock_path
        self.waited = waited


#: What makes a checkpoint fail (told, and processing goes on) rather than stop the process.
SAVE_ERRORS = (OSError, LockError, StateCodecError, ValueError, TypeError)


def _nearest(path: Path) -> tuple[Path | None, bool]:
    """The nearest folder above ``path`` that this process sees exist (None: none), past the ones inside a
    folder it may not search, whose ``stat`` is refused; and whether it stepped past one: then that folder is
    the nearest one on the way it may not search."""
    shut = False
    for parent in path.parents:
        try:
            if parent.exists():
                return parent, shut
        except PermissionError:
            shut = True
    return None, shut


class AccessDenied(LockError):
    """The checkpoint or its lock file exists and this process may not open it (EACCES, EPERM: another user's
    file, such as one a riverguard run once as root left): the file is left as it is, never renamed aside."""


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # (a user the system does not name)
        return str(uid)


def denied(path: Path, action: str, err: OSError, also: tuple[Path, ...] = (), make: Path | None = None,
           enter: bool = False, reason: str | None = None, checkpoint: Path | None = None) -> str:
    """The message for ``path`` that this process may not ``action`` (``err``): whose the file is, its mode,
    and the ``chown`` that gives it to this process's user, with those of ``also`` that another user owns (for
    a state folder ``path``, its ``checkpoint`` too: one command keeps the models; a folder of its own, its
    ``chmod`` and their ``chown``); or,
    for a folder ``make`` missing in ``path``, the ``install -d`` that makes it this user's (never ``path``'s
    ``chown``: ``/var/lib`` is not riverguard's); or, with ``enter``, for a folder on the way that this process
    may not search, the ``chmod`` that lets its user in (a ``make`` below would not get past it), or, for
    another user's folder, a state path outside it first. Running riverguard as the owner is told as the other
    way only for an owner other than root; for a folder of root's not named for riverguard (``/etc``), a
    folder of riverguard's own in it, never its ``chown`` (:func:`_riverguards`), and the checkpoint moved
    there. ``reason``: why, when ``err`` alone does not say it."""
    if reason is None:
        reason = "permission denied" if err.errno == errno.EACCES else (err.strerror or str(err)).lower()
    me = os.geteuid()
    try:
        st = os.stat(path)
    except OSError:
        return f"cannot {action} {path}: {reason}"
    told = f"cannot {action} {path}: {reason} (owner {_user(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}; " \
        f"riverguard runs as {_user(me)}): "
    if enter:  # (another user's, root's /tmp/sh say: not for riverguard to open, nor to run as root)
        told += f"{path} must let {_user(me)} in: "
        if st.st_uid == me:
            return told + f"run `chmod u+x {path}`"
        if st.st_gid in {os.getegid(), *os.getgroups()}:
            return told + f"run `chmod g+x {path}`, or use a state path outside it"
        return told + f"use a state path outside it, or have {_user(st.st_uid)} run `chmod o+x {path}`"
    told += "run "
    if make is not None:
        return told + f"`install -d -o {_user(me)} {make}`"
    files = (path, *((checkpoint,) if checkpoint is not None else ()), *also)
    others = " ".join(str(p) for p in files[1:] if _owner(p) not in (None, me))
    if st.st_uid == me:  # its own file (or folder), without the permission
        told += f"`chmod {'u+rwx' if stat.S_ISDIR(st.st_mode) else 'u+rw'} {path}`"
        return told + f" and `chown {_user(me)} {others}`" if others else told
    if st.st_uid == 0 and stat.S_ISDIR(st.st_mode) and not _riverguards(path, checkpoint):
        # (root's folder, not one made for riverguard: /etc, /var/lib are not riverguard's to take)
        own = path / "riverguard"
        told += f"`install -d -o {_user(me)} {own}`"
        if checkpoint is not None and os.path.lexists(checkpoint):  # (moved there, its models are kept)
            moved = own / STATE_FOLDER_FILE
            told += f", `mv {checkpoint} {moved}`"
            if _owner(checkpoint) != me:
                told += f", `chown {_user(me)} {moved}`"
        return told + f" and give --state (or [state] path) {own}/"
    told += f"`chown {_user(me)} {' '.join((str(path), others)) if others else path}`"
    # (never: run riverguard as root, a processor fed by the network that needs no privilege)
    return told if st.st_uid == 0 else told + f", or run riverguard as {_user(st.st_uid)}"


def _riverguards(folder: Path, checkpoint: Path | None) -> bool:
    """Whether ``folder`` is riverguard's own, to give to its user: named for it, or holding ``checkpoint``
    and nothing but its files (its lock file, temporary files, checkpoints set aside): a state folder a
    riverguard made (``--state st/``, run once as root), not ``/etc`` or ``/var/lib``."""
    if "riverguard" in folder.name:
        return True
    if checkpoint is None or checkpoint.parent != folder:
        return False
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    name = checkpoint.name
    return name in names and all(n == name or n.startswith((f"{name}.", f".{name}.tmp-")) for n in names)


def _uncreatable(path: Path) -> PermissionError | None:
    """Why this process may not create the checkpoint ``path``'s temporary file beside it (its folder made
    read-only, another user's), which every checkpoint needs; None when it may. Tried for real, as a write
    would (its ACLs, the capabilities of root), and removed at once. Anything else (a full disk, say; a
    read-only mount is refused at the lock file) may pass before the first checkpoint: left to it (None)."""
    tmp = temp_path(path)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOCTTY, 0o600))
    except PermissionError as err:  # (EACCES, EPERM)
        return err
    except OSError:
        return None
    tmp.unlink(missing_ok=True)
    return None


def _may_fowner() -> bool:
    """Whether this process has CAP_FOWNER (root's, unless dropped): it may replace another user's file in a
    sticky folder. Read from ``/proc/self/status``; without it, whether it runs as root."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 3 & 1)  # (CAP_FOWNER is capability 3)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def _owner(path: Path) -> int | None:
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


class StateStore:
    """Checkpoints ``engine`` to the checkpoint file ``path`` (a state path that names a folder, as written:
    :func:`~riverguard.config.state_path` gives the file in it)."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = Path(path)
        self.log = engine.log
        #: The restored checkpoint's header (empty until :meth:`restore` read one).
        self.header: dict[str, Any] = {}
        #: More header entries to save with the models (``riverguard pull`` keeps its high-water marks here).
        self.extra: dict[str, Any] = {}
        self._lock_fd: int | None = None
        #: Checkpoints written, failed and skipped (:meth:`tick`) since start; the last one's duration (s) and
        #: size (bytes).
        self.checkpoints = 0
        self.failures = 0
        self.skipped = 0
        self.last_seconds = 0.0
        self.last_bytes = 0
        #: Why the last checkpoint failed; None once one is written (or before any is tried).
        self.error: str | None = None
        self.clock: Callable[[], float] = time.monotonic  # (the repeat limit of the failures' E! lines)
        self._streak = 0  # checkpoints failed in a row
        self._written_at: float | None = None  # when the last one was written (clock)
        self._repeats = RateLimit(burst=1, period=FAILURE_REPEAT)  # (made again at each streak's first failure)
        self._child: Forked | None = None  # a checkpoint being written in the background (tick)
        self._child_started = 0.0
        self._no_fork = False  # this platform cannot fork: checkpoints are written in this process
        self._fork_failed = False  # the last tick could not fork (told once a streak): it tries again
        self._preload: _Preload | None = None  # the checkpoint read before the lock (:meth:`preload`)

    @property
    def lock_path(self) -> Path:
        return _lock_path(self.path)

    def lock(self, wait: float = LOCK_WAIT, idle: Callable[[float], bool] | None = None,
             first: Callable[[], bool] | None = None) -> bool:
        """Take the exclusive lock on the checkpoint, waiting up to ``wait`` seconds; raise :class:`LockError`
        (:class:`LockBusy` when another process holds it).

        ``idle(seconds)`` is called between two tries instead of sleeping (``run`` reads its input
        meanwhile); when it returns True the wait ends at once (:class:`LockBusy`). ``first()``, once every
        check of the files is done and before the first try, waits for what must come before it (``run``: its
        first input, :meth:`riverguard.stream.Held.first`); when it returns False the lock is not taken, and
        this returns False (else True).

        The lock file holds the PID of the process that has it; the lock goes
        with the process (``flock``), so a crashed holder never blocks a restart.
        A checkpoint or lock path that exists as anything but a regular file (a
        folder, a device, a FIFO, a socket, also through a symlink) is refused before it
        is opened: it is never read, renamed aside or replaced. A checkpoint or lock file this process may not
        open (another user's) is refused too (:class:`AccessDenied`), and left as it is; so is a state folder
        it may not write the checkpoint in (the lock file there already), or another user's checkpoint in a
        sticky folder (``/tmp``) that it may not replace, once it has the lock: a refusal that would otherwise
        come at the first checkpoint, the last one for ``replay``.
        """
        blocker, shut = check_place(self.path)  # (its walk up to the nearest folder: told below if need be)
        lock_path = self.lock_path
        try:  # another user's checkpoint: refused before the lock file or the temporary files are touched
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY))
        except PermissionError as err:
            if os.path.lexists(self.path):  # (else a folder on the way is closed to it: told at the lock file)
                raise self._denied(self.path, "read the checkpoint", err, also=(lock_path,)) from None
        except OSError:
            pass  # missing (normal), or not a checkpoint: told by restore
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            # (O_NONBLOCK: a FIFO put there since the check must not hang the open)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY, 0o600)
        except OSError as err:
            if isinstance(err, PermissionError) and os.path.lexists(lock_path):  # another user's lock file
                raise self._denied(lock_path, "open the lock file", err, also=(self.path,)) from None
            # a file where a folder should be gives EEXIST or ENOTDIR: name the file, not the symptom
            if blocker != lock_path.parent:  # (the walk came before mkdir, which may have made folders since)
                blocker, shut = _nearest(lock_path)
            if isinstance(err, PermissionError) and blocker is not None and blocker.is_dir():
                # a folder this process may not write (not given to Telegraf's user): as another user's file;
                # the state folder missing (step 2 left out), its parent a system folder: make it, not chown that
                folder = lock_path.parent
                if shut:  # a folder on the way it may not even search: that one must let it in first
                    raise AccessDenied(denied(blocker, f"reach the state folder {folder} through", err,
                                              enter=True)) from None
                if blocker == folder:
                    raise AccessDenied(denied(blocker, f"create the lock file {lock_path} in", err,
                                              checkpoint=self.path)) from None
                raise AccessDenied(denied(blocker, f"create the state folder {folder} in", err, make=folder)) from None
            reason = _not_a_folder(blocker) if blocker and not blocker.is_dir() else err.strerror or err
            raise LockError(_no_lock_file(lock_path, reason)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            check_regular(lock_path, "the lock file")
        if first is not None:
            # (``run``: a folder it may not write is told at start, not at its first metric, which may be long
            # after; its probe file is this process's own, so the lock is not needed for it. Checked again below,
            # with the lock: the folder may change meanwhile.)
            try:
                self._check_writable()
            except AccessDenied:
                os.close(fd)
                raise
            if not first():
                os.close(fd)
                return False
        started = time.monotonic()
        deadline = started + wait
        told = stop = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if stop or time.monotonic() >= deadline:
                    os.close(fd)
                    waited = time.monotonic() - started
                    raise LockBusy(
                        f"checkpoint {self.path} is in use by another riverguard (PID {holder}, lock {lock_path}); "
                        f"waited {wait if not stop else waited:.3g}s: stop that process or give this one another --state",
                        self.path,
                        holder,
                        lock_path,
                        waited,
                    ) from None
                if not told:
                    self.log.info(f"checkpoint {self.path} is in use by PID {holder}: waiting up to {wait:g}s")
                    told = True
                if idle is None:
                    time.sleep(0.05)
                else:
                    stop = idle(0.05)
            except OSError as err:
                os.close(fd)
                raise LockError(f"cannot lock {lock_path}: {err.strerror or err}") from None
        try:  # (with the lock held: no other process writes or removes temporary files here meanwhile)
            self._check_writable()
        except AccessDenied:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        self._remove_orphans()
        return True

    def _check_writable(self) -> None:
        """Raise :class:`AccessDenied` when this process may not create the checkpoint's temporary file in
        its folder (:func:`_uncreatable`); called with the lock held. Whether the checkpoint may be replaced
        is checked either way."""
        err = _uncreatable(self.path)
        if err is not None:
            raise self._folder_denied(err)
        self._check_replaceable()

    def _folder_denied(self, err: PermissionError) -> AccessDenied:
        """The checkpoint's folder may not be written (``err``): its message, whose ``chown`` covers the
        checkpoint and its lock file when another user's too (a riverguard run once as root made all three)."""
        return AccessDenied(denied(self.path.parent, f"write the checkpoint {self.path} in", err,
                                   checkpoint=self.path, also=(self.lock_path,)))

    def _denied(self, path: Path, action: str, err: PermissionError, also: tuple[Path, ...]) -> AccessDenied:
        """The checkpoint or its lock file ``path`` may not be opened (``err``): its message; or the folder's,
        when that may not be written either. Told the file's alone, the ``chown`` it gave left the folder to
        the next start, which then told to make a new one, leaving the models behind."""
        folder_err = _uncreatable(self.path)
        if folder_err is not None:
            return self._folder_denied(folder_err)
        return AccessDenied(denied(path, action, err, also=also))

    def _check_replaceable(self) -> None:
        """Raise :class:`AccessDenied` when the checkpoint is another user's in a sticky folder (``/tmp``, mode
        1777): there only the file's owner, the folder's, or a process with CAP_FOWNER may replace it, so every
        checkpoint's rename over it would fail (EPERM), though the temporary file is made and the lock taken."""
        folder = self.path.parent
        try:  # (not check_regular's stat: that one follows a symlink, and came before the lock, maybe a wait)
            st = os.lstat(self.path)  # (a symlink: the link is what the rename replaces)
            fst = os.stat(folder)
        except OSError:
            return
        me = os.geteuid()
        if not fst.st_mode & stat.S_ISVTX or me in (st.st_uid, fst.st_uid) or _may_fowner():
            return
        why = f"its folder {folder} is sticky (mode {stat.S_IMODE(fst.st_mode):04o}): only the file's owner (or " \
            "the folder's) may replace it"
        err = PermissionError(errno.EPERM, os.strerror(errno.EPERM))  # (what the rename would give)
        raise AccessDenied(denied(self.path, "replace the checkpoint", err, also=(self.lock_path,), reason=why))

    def _keep_lock(self) -> None:
        """Before a checkpoint: make sure this process still holds the lock of the file it writes. The state
        folder or the lock file removed while it ran (``rm -rf``, a cleanup) left it holding the lock of a
        file no longer there, and a second process would start on the checkpoint without waiting: the folder
        and the lock file are made again and locked (one ``W!``). Raise :class:`LockError` when another process
        has taken the new lock meanwhile: its checkpoint is never overwritten."""
        fd = self._lock_fd
        if fd is None:  # (a store that never took the lock)
            return
        held = os.fstat(fd)
        try:
            there = os.stat(self.lock_path)
            if (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):
                return
            what, done = f"the lock file {self.lock_path} was replaced", "locked the new one"
        except FileNotFoundError:
            folder = self.path.parent
            what, done = (f"the lock file {self.lock_path} was removed", "re-created it") if folder.is_dir() else \
                (f"the state folder {folder} was removed", "re-created it and its lock")
        except NotADirectoryError:  # (not made again: the file is the user's)
            raise LockError(f"{_replaced_by_file(self.path)} while riverguard ran: the checkpoint is written "
                            "again once it is a folder (the file is left as it is)") from None
        except OSError:  # (cannot be looked at: left to the write, which says why)
            return
        try:
            self.lock(wait=0)
        except LockBusy as err:
            raise LockError(f"{what} while riverguard ran, and another riverguard (PID {err.holder}) has locked "
                            "the checkpoint since: not overwriting it (this process's models are not saved; "
                            "stop one of the two)") from None
        except LockError as err:
            raise LockError(f"{what} while riverguard ran, and it could not be locked again: {err}") from None
        os.close(fd)  # (the lock of the file removed)
        self.log.warn(f"{what} while riverguard ran: {done}")

    def unlock(self) -> None:
        """Let the lock go (a process that will not use the checkpoint after all)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _remove_orphans(self) -> None:
        """Delete the temporary checkpoint files of processes killed while they wrote one (``.<name>.tmp-<pid>``).

        Only the lock's holder writes them, so with the lock taken every one is an orphan; a crash loop
        would otherwise fill the disk with them, one checkpoint's size each.
        """
        count = size = 0
        for path in orphans(self.path):
            try:
                length = os.lstat(path).st_size
                path.unlink()
            except OSError as err:
                self.log.warn(f"cannot remove the temporary checkpoint file {path}: {err.strerror or err}")
                continue
            count += 1
            size += length
        if count:
            self.log.info(
                f"removed {count} temporary checkpoint file(s) ({plural(size, 'byte')}) left in {self.path.parent} "
                "by processes killed while writing a checkpoint"
            )

    def restore(self) -> int:
        """Load the checkpoint into the engine; return the number of series restored.

        Raise :class:`AccessDenied` when this process may not read it (the file is left as it is); a file that
        is not a usable checkpoint is renamed aside, and the engine starts fresh. What :meth:`preload` read is
        used if the file is still the one it read (waited for if it is not done): else the file is read now."""
        ahead = self._preloaded()  # (before the collector is paused here: the preload pauses it too)
        with _no_gc():
            restored = self._restore(ahead)
        gc.freeze()  # the restored models are long-lived: keep them out of every collection
        return restored

    def preload(self) -> None:
        """Start reading and decoding the checkpoint in a thread, without the lock (``run``, while it waits for
        its first metric: :meth:`restore` then has little left to do). The thread is a daemon: a process that
        exits before it is done does not wait for it. :meth:`restore` waits for it, so no thread runs when
        a checkpoint is forked; :meth:`drop_preload` lets it go."""
        if self._preload is None:
            try:
                self._preload = _Preload(self.engine, self.path)
            except RuntimeError:  # (no thread to be had: the user's process limit; the read at the lock, as before)
                self._preload = None

    def drop_preload(self) -> None:
        """Let what :meth:`preload` read go (this process will not restore it: no lock), without waiting."""
        if self._preload is not None:
            self._preload.drop()
            self._preload = None

    def _preloaded(self) -> _Preloaded | None:
        """What :meth:`preload` read, once it is done, if the checkpoint file is still the one it read; else None
        (none started, it failed: the read now tells why, or another process wrote the file since)."""
        preload, self._preload = self._preload, None
        if preload is None:
            return None
        ahead = preload.result()
        if ahead is None:
            return None
        try:
            now = identity(os.stat(self.path))
        except OSError:
            now = None
        if now != ahead.checkpoint.identity:
            self.log.debug(f"checkpoint {self.path} was written since it was read ahead: reading it again")
            return None
        return ahead

    def _restore(self, ahead: _Preloaded | None = None) -> int:
        engine, log = self.engine, self.log
        started = time.monotonic()
        try:
            self.header = {}
            if ahead is not None:
                checkpoint, clock, entries = ahead.checkpoint, ahead.clock, ahead.entries
            else:
                checkpoint = read(self.path)
                clock = _clock(checkpoint.header)
                entries = _decoded(engine, checkpoint.records)  # (one record at a time, as they are restored)
            engine.take_pairs(checkpoint.header.get("taken"))  # before the series: it bars some of them
            restored, dropped = self._apply(entries, *(clock or (None, [])))
            if clock is not None:
                engine.load_clock(*clock)
            over = engine.shrink()  # a lowered max_series applies to the restored series too
            restored -= over
            dropped[engine.OVER] += over
            engine.begin_run()
            self.header = checkpoint.header
        except FileNotFoundError:
            log.info(f"no checkpoint at {self.path} yet: starting fresh")
            return 0
        except PermissionError as err:  # (EACCES, EPERM) another user's file: it is theirs, not corrupt
            engine.adopt({})
            engine.taken.clear()
            raise AccessDenied(denied(self.path, "read the checkpoint", err, also=(self.lock_path,))) from None
        except (CheckpointError, StateCodecError, OSError) as err:
            engine.adopt({})
            engine.taken.clear()
            try:
                aside = set_aside(self.path)
                where = f"renamed to {aside.name}"
            except OSError as move_err:
                where = f"could not rename it: {move_err}"
            log.warn(f"checkpoint {self.path} is unusable: {err}; {where}; starting fresh")
            return 0
        took = time.monotonic() - started
        if ahead is not None:  # (the load's time is still the whole of it; the first metric waited for this part)
            log.debug(f"checkpoint {self.path} read ahead in {ahead.seconds:.2f}s, then {took:.2f}s at the lock")
            took += ahead.seconds
        log.info(f"restored {restored} series from {self.path} in {took:.2f}s" + engine.dropped_counts(dropped))
        return restored

    def _apply(self, entries: Iterable[_Entry], now: int | None, window: list[int]) -> tuple[int, Counter[str]]:
        """Restore a checkpoint's records, decoded (:func:`_decoded`), into the engine (a record of a version
        1 checkpoint, without when its series was seen: seen at its latest timestamp, else the clock's time
        ``now``, None if not known); the number restored and the number of models not restored, by reason
        (:attr:`Engine.DROPPED`). The newest event time (the lag's) is that of the series' last timestamps and
        the clock's ``window`` that is on time."""
        engine = self.engine
        series_map: dict[bytes, Any] = {}
        restored = unsaved = 0
        dropped: Counter[str] = Counter()
        restore = engine.restore
        for key, field_key, rule, why, seen, last_time, anomalies, detector, seen_at in entries:
            if rule is None:
                dropped[why] += 1
                continue
            if detector is None:  # its model could not be saved: it starts fresh
                unsaved += 1
                continue
            series = engine.make_series(rule, detector, field_key)
            if seen_at is None:
                seen_at = now if last_time is None else last_time
            restore(series, seen, last_time, seen_at, anomalies)
            series_map[key] = series
            restored += 1
        engine.adopt(series_map)
        barred = engine.drop_barred()
        restored -= barred
        dropped[engine.BARRED] += barred
        times = [s.last_time for s in series_map.values() if s.last_time is not None]
        if times:  # (with the window: the series may all be of the metrics far ahead, the others unscored)
            engine.now = newest_on_time(times + window, now, engine.clock.ttl)
        if unsaved:
            self.log.warn(plural(unsaved, "series was checkpointed without its model (it could not be saved): it starts fresh",
                                 "series were checkpointed without their model (it could not be saved): they start fresh"))
        return restored, dropped

    def save(self, tell: bool = False) -> bool:
        """Write a checkpoint; return False on failure (processing goes on: the next one tries again).

        The first failure is told (``E!``, the file and the reason); while they go on, one at most every
        :data:`FAILURE_REPEAT` seconds (how many in a row, since when), and with ``tell`` always (the process's
        last, one a SIGHUP asked for); the first written after them gets an ``I!`` line. :attr:`error` says
        why the last one failed. A SIGTERM or SIGINT waits until it is written
        (:func:`~riverguard.signals.checkpointing`). One still being written in the background (:meth:`tick`)
        is older than this one: its child is stopped (its temporary file removed, nothing told), not waited
        for; one already written is told as :meth:`poll` tells it.
        """
        with checkpointing(self.log, f"the checkpoint {self.path}"), _no_gc():
            self._supersede()
            started = time.monotonic()
            try:
                self._prepare()
                self._finished(*self._write(), started)
            except SAVE_ERRORS as err:
                self._failed(err, tell)
                return False
            return True

    def tick(self) -> None:
        """A periodic checkpoint (``run``'s), written in the background: a forked child (:mod:`~riverguard.forked`)
        writes the models as they are now, while this process goes on scoring; :meth:`poll` reaps it and
        tells its outcome as :meth:`save` would. While one is being written the next tick is skipped
        (:attr:`skipped` counts them; one ``W!`` the first time). When the process cannot fork, the checkpoint
        is written here (one ``W!``); the next tick tries again (a fork refused for a moment, ``EAGAIN`` or
        ``ENOMEM``), unless the platform has none."""
        if self._child is not None and not self.poll():
            self.skipped += 1
            if self.skipped == 1:
                self.log.warn(f"checkpoint to {self.path}: the one before is still being written after "
                              "[state] checkpoint_interval; skipping this one (and the next ones while that lasts;"
                              " the health line's checkpoints_skipped counts them)")
            return
        if self._no_fork:
            self.save()
            return
        started = time.monotonic()
        try:
            with _no_gc():
                self._prepare()
        except SAVE_ERRORS as err:
            self._failed(err, False)
            return
        try:
            self._child = Forked.start(self._write_in_child)
        except OSError as err:
            self._no_fork = err.errno == errno.ENOSYS
            if not self._fork_failed:
                self._fork_failed = True
                self.log.warn(f"cannot start a process to write the checkpoint in the background ({err.strerror or err}):"
                              " writing it in this one, which reads no input meanwhile"
                              + ("" if self._no_fork else "; trying again at the next checkpoint"))
            self.save()
            return
        if self._fork_failed:
            self._fork_failed = False
            self.log.info("checkpoints are written in the background again")
        self._child_started = started

    @property
    def fd(self) -> int | None:
        """While a checkpoint is written in the background (:meth:`tick`): what becomes readable in ``select()``
        when it is done (then call :meth:`poll`); else None."""
        return self._child.fd if self._child is not None else None

    def poll(self) -> bool:
        """Reap the background checkpoint if it is done (never waiting), and tell its outcome as :meth:`save`
        would; True when none is being written (any more)."""
        if self._child is None:
            return True
        if not self._child.poll():
            return False
        self._reaped()
        return True

    def _supersede(self) -> None:
        """Stop the background checkpoint still being written, if any (one about to be written here is newer):
        its child is killed and reaped, its temporary file removed, and that told as no failure. One that
        was written (or failed) before it could be stopped is told as :meth:`poll` tells it."""
        if self._child is None or self.poll():
            return
        self._reaped(superseded=self._child.kill())

    def _reaped(self, superseded: bool = False) -> None:
        child, self._child = self._child, None
        assert child is not None
        try:
            outcome = child.result()
        except ForkedError as err:  # (raised, or killed: its temporary file may be left behind)
            temp_path(self.path, child.pid).unlink(missing_ok=True)
            if superseded:
                self.log.debug(f"checkpoint: the one being written in the background (PID {child.pid}) was "
                               "stopped, as a newer one is written now")
            else:
                self._failed(err, False)
            return
        if "error" in outcome:
            self._failed(outcome["error"], False)
            return
        self._finished(outcome["count"], outcome["size"], outcome["unsaved"], self._child_started, outcome["done"])

    def _write_in_child(self) -> dict[str, Any]:
        """:meth:`_write`, in the child of :meth:`tick`: its outcome as a map (a failure's reason in words)."""
        gc.disable()  # (it exits once written: a collection there would only copy pages for nothing)
        try:
            count, size, unsaved = self._write()
        except SAVE_ERRORS as err:
            return {"error": str(err)}
        return {"count": count, "size": size, "unsaved": unsaved, "done": time.monotonic()}

    def _written(self) -> None:
        """Note a checkpoint written; say so if it ends failures in a row."""
        if self._streak:
            self.log.info(f"checkpoint to {self.path} written again, after {self._streak} failed attempt(s)")
        self._streak = 0
        self.error = None
        self._written_at = self.clock()

    def _failed(self, err: object, tell: bool) -> None:
        """Count a failed checkpoint, and tell it (the first of a streak, then at most every FAILURE_REPEAT s)."""
        self.failures += 1
        self._streak += 1
        self.error = str(err)
        if self._streak == 1:  # a new streak: told at once, then limited from here
            self._repeats = RateLimit(burst=1, period=FAILURE_REPEAT, clock=self.clock)
        if not self._repeats.allow() and not tell:
            return
        if self._streak == 1:
            self.log.error(f"checkpoint to {self.path} failed: {err}")
            return
        last = "none written by this process yet" if self._written_at is None else \
            f"the last one written {self.clock() - self._written_at:.0f}s ago"
        self.log.error(f"checkpoint to {self.path} failed again: {err} ({self._streak} failed in a row; {last})")

    def _prepare(self) -> None:
        """What a checkpoint does to this process before it is written: the stale series dropped (the models
        saved are those kept), the lock checked (:meth:`_keep_lock`)."""
        self.engine.expire()
        self._keep_lock()

    def _write(self) -> tuple[int, int, list[Any]]:
        """Write the engine's series; return how many, the file's size, and the series whose models could not
        be saved: ``[how many, the first in words]`` (``[0, ""]``: none)."""
        engine = self.engine
        scored = [(key, s) for key, s in engine.lru() if s.detector is not None]
        unsaved: list[str] = []
        records = (  # encoded one at a time, as they are packed
            [key, s.rule.detector_class.name, s.rule.fingerprint, s.seen, s.last_time, s.anomalies, _encode_detector(s.detector, key, unsaved), s.seen_at]  # type: ignore[union-attr]
            for key, s in scored
        )
        header = {
            **self.extra,
            "riverguard": __version__,
            "rules": {str(r.index): r.fingerprint for r in engine.config.rules if r.detector != "off"},
            # how each rule's detector states are laid out (state inspect --series --with-state reads them by name)
            "layouts": {r.fingerprint: r.state_layout for r in engine.config.rules if r.state_layout},
            # names of added fields the user's fields hold with another type, by measurement (Engine.taken)
            "taken": engine.taken_pairs(),
            # the stream's clock, which decides when a series is stale: [now or nil, latest timestamps]
            "clock": engine.clock.dump(),
        }
        size = write(self.path, header, records, len(scored))
        return len(scored), size, [len(unsaved), unsaved[0][:2000] if unsaved else ""]

    def _finished(self, count: int, size: int, unsaved: list[Any], started: float, done: float | None = None) -> None:
        """Note a checkpoint of ``count`` series and ``size`` bytes written, begun at ``started`` and done at
        ``done`` (now), and say so (``unsaved``: as :meth:`_write` gives it)."""
        self.checkpoints += 1
        self._written()
        self.last_seconds = (time.monotonic() if done is None else done) - started
        self.last_bytes = size
        if unsaved[0]:
            self.log.warn(
                f"checkpoint: the models of {unsaved[0]} series could not be saved and will start fresh"
                f" after a restart (the others are saved); first: {unsaved[1]}"
            )
        self.log.debug(f"checkpoint: {count} series, {size} bytes in {self.last_seconds:.2f}s")


def open_store(engine: Engine, idle: Callable[[float], bool] | None = None,
               first: Callable[[], bool] | None = None) -> StateStore | None:
    """The engine's checkpoint store, locked and restored, or None when no state path is set (``run``,
    ``replay``, ``pull``) or ``first`` said not to take it. ``idle``: what to do between two tries at the
    lock, ``first``: what to wait for before the first (:meth:`StateStore.lock`); meanwhile the checkpoint is
    read ahead (:meth:`StateStore.preload`).

    Raise :class:`LockBusy` (another live process holds it), :class:`AccessDenied` (another user's checkpoint
    or lock file: the lock let go, the file left as it is) or :class:`LockError` (no lock file possible)."""
    if engine.config.state.path is None:
        return None
    store = StateStore(engine, engine.config.state.path)

    def read_ahead() -> bool:  # (``run``: the checkpoint is read while it waits for its first metric)
        assert first is not None
        store.preload()
        return first()

    try:
        locked = store.lock(idle=idle, first=read_ahead if first is not None else None)
    except LockError:  # (a copy that passes metrics through: it never restores what was read)
        store.drop_preload()
        raise
    if not locked:  # (no input: the process exits, and does not wait for the thread)
        return None
    try:
        store.restore()
    except AccessDenied:
        store.unlock()
        raise
    return store


#: A checkpoint's record decoded (:func:`_decoded`): series key, field key, the rule that holds its model (None:
#: not restored, ``why``), samples seen, latest timestamp, anomalies, the detector (None: saved without its
#: model), seen at.
_Entry = tuple[bytes, bytes, "Rule | None", str, int, "int | None", int, "Detector | None", "int | None"]


def _decoded(engine: Engine, records: list[list[Any]]) -> Iterator[_Entry]:
    """The checkpoint's ``records`` decoded for ``engine``'s rules, one at a time: nothing of the engine's is
    changed (a :class:`_Preload`'s thread runs this while the engine waits). :class:`CheckpointError` (or
    :class:`StateCodecError`) at the first record that cannot be restored."""
    cache: dict[Any, Any] = {}
    rule_for = engine.rule_for
    for key, _name, fingerprint, seen, last_time, anomalies, state, seen_at in records:
        field_key, rule, why = rule_for(key, fingerprint, cache)
        if not field_key:
            raise CheckpointError(f"bad series key {key[:80]!r}: no field")
        detector = _decode_detector(state, rule, key) if rule is not None and state is not None else None
        yield key, field_key, rule, why, seen, last_time, anomalies, detector, seen_at


class _Preloaded:
    """A checkpoint read and decoded ahead (:class:`_Preload`), and how long that took (seconds)."""

    def __init__(self, checkpoint: Checkpoint, clock: tuple[int | None, list[int]] | None, entries: list[_Entry],
                 seconds: float) -> None:
        self.checkpoint = checkpoint
        self.clock = clock
        self.entries = entries
        self.seconds = seconds


class _Preload:
    """The checkpoint ``path`` read and decoded for ``engine`` in a daemon thread (:meth:`StateStore.preload`).

    Any failure (no file, another user's, a corrupt one) leaves no result: the read at the lock says what is
    wrong, as without a preload."""

    def __init__(self, engine: Engine, path: Path) -> None:
        import threading  # (only ``run`` with a checkpoint starts one)

        self._guard = threading.Lock()
        self._dropped = False
        self._result: _Preloaded | None = None
        self._thread = threading.Thread(target=self._load, args=(engine, path), name="riverguard-preload", daemon=True)
        self._thread.start()

    def _load(self, engine: Engine, path: Path) -> None:
        result = self._read(engine, path)
        with self._guard:
            dropped = self._dropped
            if not dropped:
                self._result = result
        if dropped and result is not None:
            del result
            _release()

    @staticmethod
    def _read(engine: Engine, path: Path) -> _Preloaded | None:
        started = time.monotonic()
        try:
            with _no_gc():  # (as the restore does; it waits for this thread before it pauses the collector)
                checkpoint = read(path)
                clock = _clock(checkpoint.header)
                entries = list(_decoded(engine, checkpoint.records))
        except Exception:  # noqa: BLE001 - told by the read at the lock, which runs instead
            return None
        return _Preloaded(checkpoint, clock, entries, time.monotonic() - started)

    def result(self) -> _Preloaded | None:
        """What was read, once the thread is done (waited for): None if it failed."""
        self._thread.join()
        with self._guard:
            result, self._result = self._result, None
        return result

    def drop(self) -> None:
        """Forget the result, now or when the thread is done; without waiting for it."""
        with self._guard:
            self._dropped = True
            result, self._result = self._result, None
        if result is not None:  # (done: its memory goes back now; else the thread gives it back when done)
            del result
            _release()


def _release() -> None:
    """Give the memory of what was read ahead and let go back to the system: its models are collected, and the C
    library's allocator, which keeps freed memory for reuse, returns what it can (glibc's ``malloc_trim``). A
    ``run`` passing metrics through has no use for it: for a 66 MB checkpoint of 20 000 series, such a copy
    held 185 MB resident with it read, 128 MB once it was let go, 28 MB after the trim (23 MB without it read)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # (not glibc)
        pass


def _replaced_by_file(path: Path) -> str:
    """What of the way to the state folder of checkpoint ``path`` is a file now (a path under which one is a
    file): the nearest of its folders that exists (a path under a file does not exist: the file does)."""
    folder = path.parent
    at, _ = _nearest(path)
    return f"the state folder {folder} was replaced by a file" if at in (folder, None) else \
        f"{at}, on the way to the state folder {folder}, was replaced by a file"


def _clock(header: dict[str, Any]) -> tuple[int | None, list[int]] | None:
    """The stream's clock a checkpoint holds (``[now or nil, timestamps]``); None in one written before it
    was kept (the clock then starts again from the stream). :class:`CheckpointError` when malformed."""
    clock = header.get("clock")
    if clock is None:
        return None

    def int64(v: Any) -> bool:
        return type(v) is int and -(2**63) <= v < 2**63

    if (
        type(clock) is not list
        or len(clock) != 2
        or not (clock[0] is None or int64(clock[0]))
        or type(clock[1]) is not list
        or len(clock[1]) > 4096
        or not all(int64(t) for t in clock[1])
    ):
        raise CheckpointError("the file is corrupt (malformed clock in the header)")
    return clock[0], clock[1]


def _kind(mode: int) -> str:
    """What a file that is not a regular file or a folder is, in words."""
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _no_lock_file(lock_path: Path, reason: object) -> str:
    return f"cannot create the lock file {lock_path}: {reason}"


def _not_a_folder(blocker: Path) -> str:
    return f"{blocker} is a file, not a folder"


def check_place(path: Path) -> tuple[Path | None, bool]:
    """Raise :class:`LockError` when no riverguard could keep its checkpoint at ``path``, whatever user it
    runs as, with the message a start gives (:meth:`StateStore.lock` checks this first): the checkpoint or
    its lock file there as something else than a regular file, a file where a folder on the way should
    be, or the nearest folder on a read-only filesystem (EROFS, root's too) or on the kernel's (``/proc``,
    ``/sys``: :data:`_KERNEL_FILESYSTEMS`). Nothing is made or opened. ``check-config`` checks this, not what depends on the user (may it write
    the folder?): it is run as another user than Telegraf's (README: the state folder Telegraf's, mode 0750).
    Return the lock file's nearest folder as :func:`_nearest` finds it (the start tells why it cannot make
    the lock file from it)."""
    check_regular(path, "the checkpoint")
    lock_path = _lock_path(path)
    check_regular(lock_path, "the lock file")
    blocker, shut = _nearest(lock_path)
    if blocker is not None and not blocker.is_dir():
        raise LockError(_no_lock_file(lock_path, _not_a_folder(blocker)))
    kernel = _kernel_filesystem(blocker) if blocker is not None else None
    if kernel is not None:
        raise LockError(_no_lock_file(lock_path, f"{blocker} is on the kernel's {kernel} filesystem, where no file can "
                                      "be made: give --state (or [state] path) a folder elsewhere"))
    if blocker is not None and _read_only(blocker):
        raise LockError(_no_lock_file(lock_path, os.strerror(errno.EROFS)))
    return blocker, shut


#: The kernel's filesystems (``/proc``, ``/sys``), whose folders hold no file a process makes: creating
#: one fails (ENOENT in /proc, EACCES in /sys, root's too).
_KERNEL_FILESYSTEMS = ("proc", "sysfs")


def _kernel_filesystem(folder: Path) -> str | None:
    """The type of :data:`_KERNEL_FILESYSTEMS` ``folder`` is on (its device's mount in
    ``/proc/self/mountinfo``), or None (also when that cannot be told)."""
    try:
        device = os.stat(folder).st_dev
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:  # ("22 27 0:21 / /proc rw,relatime - proc proc rw": major:minor, then the type after -)
                fields = line.split()
                major, minor = fields[2].split(":")
                if os.makedev(int(major), int(minor)) == device:
                    kind = fields[fields.index("-") + 1]
                    return kind if kind in _KERNEL_FILESYSTEMS else None
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a filesystem mounted read-only (False when that cannot be told)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_regular(path: Path, what: str, reader: str | None = None) -> None:
    """Raise :class:`LockError` when ``path`` exists (a symlink: where it points) as anything but a regular
    file; a missing path, or one that cannot be looked at, is left to the caller. (A state path that is a
    folder is the file in it already: a folder here sits where the file should be.) The message says what to
    give instead: a state path (``--state``, ``[state] path``), or to ``reader``, the command that only reads
    the file it was given (``state inspect``)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode):
        return
    give = reader or "--state (or [state] path)"
    if stat.S_ISDIR(mode):
        act = "read" if reader else "use, rename or replace"
        raise LockError(f"{what} {path} is a folder, where the file should be: refusing to {act} it; "
                        f"move that folder away, or give {give} another file or folder")
    act = "read" if reader else "read, rename or replace"
    raise LockError(f"{what} {path} is {_kind(mode)}, not a regular file or a folder: refusing to {act} it; "
                    f"give {give} a file or a folder")


def _holder(fd: int) -> str:
    """The PID written in a lock file (``?`` when it cannot be read)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "?"


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: checkpoints create or walk millions of objects
    that are all still referenced, and collections in the middle only cost time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _encode_detector(detector: Detector, key: bytes, unsaved: list[str]) -> Any:
    """A detector's compact state (``[state]``, where the detector saves one: ``dump_state()``) or, without one, its generic encoding (a map);
    None, with the series noted in ``unsaved``, for a model the codec cannot save."""
    try:
        compact = detector.dump_state()
        return [compact] if compact is not None else encode(detector)
    except (StateCodecError, ValueError, TypeError) as err:
        unsaved.append(f"{series_name(key)!r}: {err}")
        return None


def _decode_detector(data: Any, rule: Rule, key: bytes) -> Detector:
    """Rebuild the detector of ``rule`` from what :func:`_encode_detector` wrote."""
    cls = rule.detector_class
    assert cls is not None
    if type(data) is list:
        if len(data) != 1 or type(data[0]) not in (dict, list):
            raise CheckpointError(f"series {key[:80]!r}: malformed detector state")
        try:
            return rule.new_detector.restore(data[0])
        except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError) as err:
            raise CheckpointError(f"series {key[:80]!r}: bad {cls.name} state: {err}") from None
    detector = decode(data)
    if type(detector) is not cls:
        raise CheckpointError(f"series {key[:80]!r} holds a {type(detector).__name__}, not a {cls.name} detector")
    return detector


def inspect(path: Path) -> dict[str, Any]:
    """Summary of the checkpoint file ``path`` (raises FileNotFoundError or CheckpointError)."""
    checkpoint = read(Path(path))
    detectors = Counter(record[1] for record in checkpoint.records)
    times = [record[4] for record in checkpoint.records if record[4] is not None]
    for record in checkpoint.records:
        if type(record[6]) is not list and record[6] is not None:  # compact states are checked on restore; generic ones must decode
            try:
                decode(record[6])
            except StateCodecError as err:
                raise CheckpointError(f"series {record[0][:80]!r}: {err}") from None
    summary = {
        "format": FORMAT,
        "version": VERSION,
        "riverguard": checkpoint.header.get("riverguard"),
        "created": checkpoint.header.get("created"),
        "series": len(checkpoint.records),
        "detectors": dict(sorted(detectors.items())),
        "oldest": iso_ns(min(times)) if times else None,
        "newest": iso_ns(max(times)) if times else None,
        "bytes": checkpoint.size,
    }
    pull = checkpoint.header.get("pull")
    if isinstance(pull, dict) and isinstance(pull.get("marks"), dict):  # riverguard pull's high-water marks
        summary["pull_marks"] = {str(k): iso_ns(v) if type(v) is int else None for k, v in sorted(pull["marks"].items())}
    return summary


def list_series(path: Path, glob: str = "*", with_state: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The series of a checkpoint whose key matches ``glob``, sorted by key (raises as :func:`inspect`);
    ``with_state``: each with its detector's learned state by name (:func:`_named`); and how many series the
    checkpoint holds in all."""
    import fnmatch

    checkpoint = read(Path(path))
    layouts = checkpoint.header.get("layouts")
    layouts = layouts if isinstance(layouts, dict) else {}
    match = re.compile(fnmatch.translate(glob)).match
    rows = []
    for key, name, fingerprint, seen, last_time, anomalies, state, _seen_at in checkpoint.records:
        text = series_name(key)  # as the replay's summary names it ("cpu,host=a (metric)" for a metric's model)
        if match(text):
            row = {"key": text, "detector": name, "samples": seen, "last": None if last_time is None else iso_ns(last_time), "anomalies": anomalies}
            if with_state:
                row["state"] = _named(state, layouts.get(fingerprint))
            rows.append(row)
    rows.sort(key=lambda row: row["key"])
    return rows, len(checkpoint.records)


def _named(state: Any, layout: Any) -> Any:
    """A saved detector state by name, as JSON (a buffer as ``"<N bytes>"``, a nil as null, a float that is
    not finite as a string such as ``"inf"``), or None: a flat record read
    through the layout it was saved in, a state saved by name as it is; None for a model saved through
    the generic codec (hst, pad, river), without its layout, or that does not fit it."""
    if type(state) is not list or len(state) != 1:
        return None
    compact = state[0]
    if type(compact) is list:
        if type(layout) is not str:
            return None
        from ..detectors.steps import read_record

        try:
            compact = read_record(layout, compact)
        except ValueError:
            return None

    def plain(v: Any) -> Any:  # what JSON can hold as it is; a float that is not finite as its repr ("inf")
        if type(v) is dict:
            return {str(k): plain(x) for k, x in v.items()}
        if type(v) in (list, tuple):
            return [plain(x) for x in v]
        if type(v) is bytes:
            return f"<{len(v)} bytes>"
        if v is None or type(v) in (int, bool, str) or (type(v) is float and math.isfinite(v)):
            return v
        return repr(v)

    return plain(compact)
