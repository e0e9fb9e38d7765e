"""Hostile uploads, generated (nothing large is committed): files that are small on the wire and costly to
read, or made to break a parser. The tests (tests/test_hostile_*.py, tests/test_uploads.py) and the soak
(bench/load.py) use the same makers, so a figure in bench/RESULTS.md is a case the tests check.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
from PIL import Image


def png(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def strip_png(width: int, height: int) -> bytes:
    """A solid grey PNG of width x height: a 300,000 x 8 one is 7 KB (every row deflates to almost nothing)."""
    return png(Image.new("L", (width, height), 90), compress_level=9)


def deep_png(width: int, height: int) -> bytes:
    """A 16-bit grey PNG (mode I;16), solid: each pixel decodes to 2 bytes and used to be scaled as float64."""
    a = np.full((height, width), 40_000, dtype=np.uint16)
    return png(Image.frombytes("I;16", (width, height), a.tobytes()), compress_level=9)


def eps_file() -> bytes:
    """A minimal Encapsulated PostScript file: Pillow opens EPS by running Ghostscript, where it is installed."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\n"
            b"newpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n")


def other_format(fmt: str) -> bytes:
    """A valid small image in a format Pillow reads but no tab names (PPM, ICO, PCX, TGA, ...)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def wide_csv(columns: int, rows: int) -> bytes:
    """A CSV whose header has `columns` cells, then `rows` short rows: choosing the text column used to scan
    every row once per column (columns x rows)."""
    header = ",".join(f"c{j}" for j in range(columns))
    return (header + "\n" + "1\n" * rows).encode()


def many_lines(lines: int, text: str = "a") -> bytes:
    """A .txt of `lines` one-character lines (4 million lines are 8 MB)."""
    return (text + "\n").encode() * lines


def long_cell_csv(chars: int, header: str = "text,label") -> bytes:
    """A CSV with one cell of `chars` characters (the csv module refuses cells over 131,072)."""
    return f'{header}\n"{"x" * chars}",a\n'.encode()


def directory_records(entries: int, declared: int = 1, name: bytes = b"") -> bytes:
    """A zip of `entries` central-directory records (46 bytes each, plus the name) and no data, whose end
    record declares `declared` entries: 50 MB of records is a million entries, written down as one."""
    record = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
    directory = (record + name) * entries
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, declared & 0xFFFF, declared & 0xFFFF, len(directory), 0, 0)
    return directory + end


def zip_of(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)   # written as given: ZipFile.write would clean the name
            info.compress_type = compression
            z.writestr(info, data)
    return buf.getvalue()


def wav(samples: np.ndarray, rate: int = 16_000, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def tone(seconds: float = 1.0, rate: int = 16_000, hz: float = 440.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def forged_wav(rate: int, channels: int) -> bytes:
    """A WAV header claiming `rate` Hz and `channels` channels over a 4 GB data chunk, with 1 KB of data."""
    block = 2 * channels
    header = struct.pack("<4sL4s4sLHHLLHH4sL", b"RIFF", 0xFFFFFFFF, b"WAVE", b"fmt ", 16, 1, channels, rate,
                         rate * block, block, 16, b"data", 0xFFFFFFF0)
    return header + bytes(1024)
