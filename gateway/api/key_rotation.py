"""Rotation without restart: `auth.keys_file` is read again when it changes, and on SIGHUP.

The file's identity (inode, size, mtime) is compared every `heartbeat.interval_ms`, as the workers' CURVE
folder is. A new file that reads and checks out replaces the keys from the file (those in the config itself
stay); a bad one is logged and the keys in force stay in force, so a typo never locks everyone out, nor lets
everyone in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from gateway.api.auth import KeyTable, Rules
from shared.config import ApiKeyEntry, ConfigError, check_unique_names, read_keys_file

log = structlog.get_logger("gateway.api.auth")

Signature = tuple[int, int, int] | None  # (inode, size, mtime_ns); None: the file cannot be looked at


class KeysFileWatch:
    """Sans-IO: the file signatures seen, one per tick, in; whether to read the file again, out."""

    def __init__(self, seen: Signature) -> None:
        self.seen = seen

    def changed(self, now: Signature) -> bool:
        """True once per change: a file replaced by rename (new inode), rewritten, or touched."""
        if now == self.seen:
            return False
        self.seen = now
        return True


def signature(path: Path) -> Signature:
    """What `KeysFileWatch` compares; a stat, so run it off the event loop."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class KeyRotation:
    """Owns the re-reading of one keys file into `rules` (which REST and gRPC share)."""

    def __init__(self, rules: Rules, path: Path, interval_s: float) -> None:
        self.rules = rules
        self.path = path
        self.interval_s = interval_s
        self.reread = asyncio.Event()  # set by SIGHUP: read now, changed or not
        self.reloads = 0  # successful re-reads, for tests and logs

    async def run(self, watch: KeysFileWatch) -> None:
        """Until cancelled: wait a tick or a SIGHUP, then read the file again if it changed (or was asked to)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self.reread.wait()
            asked = self.reread.is_set()
            self.reread.clear()  # a SIGHUP from here on is another request: the next wait returns at once
            if watch.changed(await asyncio.to_thread(signature, self.path)) or asked:
                await self.reload(reason="sighup" if asked else "changed")

    async def reload(self, reason: str) -> bool:
        """Read the file and swap the key table; False (old keys kept, the error logged) if the file is bad."""
        inline = tuple(k for k in self.rules.table.entries if k.source is None)
        try:
            keys = await asyncio.to_thread(self._read, inline)
        except ConfigError as exc:
            # The message names the file and the record, never a key (files hold digests only).
            log.error("keys_file_rejected", keys_file=str(self.path), reason=reason, error=str(exc), kept="old keys")
            return False
        before = {k.name for k in self.rules.table.entries}
        self.rules.table = KeyTable(keys)
        self.reloads += 1
        after = {k.name for k in keys}
        log.info(
            "keys_reloaded",
            keys_file=str(self.path),
            reason=reason,
            keys=len(keys),
            added=sorted(after - before),
            removed=sorted(before - after),
        )
        return True

    def _read(self, inline: tuple[ApiKeyEntry, ...]) -> tuple[ApiKeyEntry, ...]:
        keys = inline + read_keys_file(self.path)
        check_unique_names(keys)
        return keys


@contextlib.asynccontextmanager
async def rotating(rules: Rules, path: Path, interval_s: float) -> AsyncIterator[KeyRotation]:
    """Run a KeyRotation, with SIGHUP asking it to read the file now, for as long as the block runs."""
    rotation = KeyRotation(rules, path, interval_s)
    # The file as it is now is the one the keys in force came from: looked at before the block runs, so a change
    # made as soon as the app is up is a change, not the starting point.
    watch = KeysFileWatch(await asyncio.to_thread(signature, path))
    loop = asyncio.get_running_loop()
    hup = _listen_for_sighup(loop, rotation)
    task = asyncio.create_task(rotation.run(watch), name="akidb-key-rotation")
    try:
        yield rotation
    finally:
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _listen_for_sighup(loop: asyncio.AbstractEventLoop, rotation: KeyRotation) -> bool:
    if os.name != "posix":
        return False
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: rotation.reread.set())
    except (RuntimeError, ValueError):  # not the main thread's loop (an embedding application's): polling only
        log.info("keys_file_sighup_unavailable", keys_file=str(rotation.path))
        return False
    return True
