"""Freed memory handed back to the system after each event, so that a server's resident size follows its work.

glibc's malloc keeps what a thread frees in that thread's arena for its next allocations. After one
50-megapixel decode (150 MB of pixels, freed when the event ends) a worker thread holds on to that memory,
and over many events of different sizes each worker's arena grows with fragmentation: a public Space then
counts memory against its limit that nothing uses. `release` asks malloc to return the free pages of every
arena (`malloc_trim`, a few microseconds when there is nothing to return). Elsewhere than glibc it does
nothing: other allocators have no such call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release() -> bool:
    """Return freed heap memory to the system (glibc); True when it gave back any."""
    trim = _trim()
    return bool(trim(0)) if trim is not None else False
