"""Reading uploads without trusting them, for batch mode (demo/batch.py) and Teach (demo/teach.py).

Every upload is counted and measured while it is read, before anything is materialised. A `Budget` is one
upload's allowance (files, items, bytes, zip entries, lines, cells); the readers below spend it as they go,
and the whole upload is refused (`InputError`, with a message that names the limit and what to do) the
moment one count passes its limit, not after everything was parsed:
- zips: `zip_directory` walks the central directory's own bytes, whose size is bounded, and counts its
  records before `zipfile` parses (and allocates) them; the 16-bit count the sender writes is never
  trusted. `check_member` refuses paths outside the archive, links and bombs; `member_bytes` reads at most
  a member's declared size. Nothing is extracted here.
- text: `read_text` (UTF-8, at most MAX_TEXT_BYTES), `text_lines` (lazy, counted), `csv_records` (a
  bounded delimiter guess, then rows counted, columns and cells bounded, a cell over the csv module's limit
  named as such) and `text_column` (the column to classify, in one pass over the cells).

The limits are the constants below, each with its reason; docs/limits.md lists them all.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from training.tasks import InputError

# 500 items: with the shipped models on one CPU thread, 500 images take about 6 s (11 ms each) and 500 clips
# about 1.5 s (2.5 ms each, measured), so a batch answers well within its time limit on a busy Space.
MAX_ITEMS = 500
MAX_FILES = 500                    # files in one upload (each is at least one row)
MAX_TOTAL_BYTES = 200 * 2**20      # files and (declared) zip members of one upload, together
MAX_ZIP_ENTRIES = 2_000            # entries in one upload's zips, folders and junk included
# A central directory record is 46 bytes plus its name, extra field and comment: 2,000 entries with
# 900-byte names fit in 2 MB. A longer directory is refused before it is read.
MAX_DIRECTORY_BYTES = 2 * 2**20
# A member over RATIO_FLOOR that expands more than MAX_RATIO times is a zip bomb. PNG, JPEG, MP3 and FLAC
# are already compressed (ratio ~1). Silence is what deflates most (measured: a silent 16 kHz WAV, 320
# times for 1 s, 960 times for 30 s), but a 30 s clip, the most the speech decoder reads, is 0.9 MB:
# under the floor. Only longer silent recordings (a minute at 16 kHz, 30 s at 48 kHz stereo) are refused.
MAX_RATIO = 100
RATIO_FLOOR = 2**20
MAX_TEXT_BYTES = 10 * 2**20        # one .txt or .csv file
MAX_LINES = 20 * MAX_ITEMS         # lines (or CSV records) of one upload, blank ones included
MAX_COLUMNS = 100                  # cells in one CSV record: a table of texts has a handful
MAX_CELLS = 100_000                # cells of one upload's CSVs
CELL_LIMIT = csv.field_size_limit()   # the csv module's own limit on one cell: 131,072 characters
SNIFF_BYTES = 16 * 1024            # of a CSV, read to guess its delimiter
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"}   # with hidden files: skipped silently

# What zipfile raises for a damaged or unusual zip (found by fuzzing uploads): unsupported versions and
# methods, encrypted members (RuntimeError), fields that point past the end of the data, names flagged
# UTF-8 that are not. Not ValueError as a whole: that would also catch bugs.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError,
              IndexError, struct.error, UnicodeDecodeError)


def megabytes(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


# ------------------------------------------------------------------------------------------- budget

LIMIT_MESSAGES = {
    "files": "{where} has more than {limit:,} files; at most {limit:,} are read at once. Please split it.",
    "items": "{where} holds more than {limit:,} {noun}s; at most {limit:,} are run at once. Please split it "
             "into smaller batches.",
    "bytes": "{where} holds more than {size} of {noun}s; at most {size} are read at once. Please split it "
             "into smaller batches.",
    "entries": "{where} has more than {limit:,} zip entries; at most {limit:,} are opened at once. Please "
               "split it into smaller zips.",
    "lines": "{where} has more than {limit:,} lines; at most {limit:,} are read at once. Please split it.",
    "cells": "{where} has more than {limit:,} CSV cells; at most {limit:,} are read at once. Please keep "
             "only the text column, or split the file.",
}


@dataclass
class Budget:
    """What one upload may hold. `spend` counts as the readers go and refuses the whole upload the moment a
    count passes its limit; `noun` names one item in the messages ("image", "text", "sample"). A limit left
    None is this module's constant, read when the budget is made."""
    noun: str = "item"
    files: int | None = None
    items: int | None = None
    bytes: int | None = None
    entries: int | None = None
    lines: int | None = None
    cells: int | None = None
    spent: Counter = field(default_factory=Counter)

    def __post_init__(self):
        defaults = {"files": MAX_FILES, "items": MAX_ITEMS, "bytes": MAX_TOTAL_BYTES, "entries": MAX_ZIP_ENTRIES,
                    "lines": MAX_LINES, "cells": MAX_CELLS}
        for what, limit in defaults.items():
            if getattr(self, what) is None:
                setattr(self, what, limit)

    def spend(self, what: str, n: int = 1, where: str = "The upload") -> None:
        self.spent[what] += n
        limit = getattr(self, what)
        if self.spent[what] > limit:
            raise InputError(LIMIT_MESSAGES[what].format(where=where, limit=limit, noun=self.noun,
                                                         size=megabytes(limit)))


# --------------------------------------------------------------------------------------------- zips

class UnreadableZip(InputError):
    """A file that is no zip that can be read; `reason` is what the zip reader said."""

    def __init__(self, path: Path, reason: object):
        super().__init__(f"{path.name} could not be read as a zip ({reason}).")
        self.reason = reason


END = struct.Struct("<4s4H2LH")          # end of central directory record
END64 = struct.Struct("<4sQ2H2L4Q")      # zip64 end of central directory record
LOCATOR = struct.Struct("<4sLQL")        # zip64 end of central directory locator
RECORD = struct.Struct("<4s6H3L5H2L")    # central directory file header, before its name


def zip_directory(path: Path, budget: Budget | None = None) -> list[zipfile.ZipInfo]:
    """The entries of the zip at `path`, counted in the directory's bytes before zipfile parses them (see the
    module docstring) and spent from `budget`; too many, or a directory too long, refuses the upload
    (InputError); a file that is no readable zip is an UnreadableZip."""
    try:
        with path.open("rb") as f:
            start, size = directory_span(f)
            if size > MAX_DIRECTORY_BYTES:
                raise InputError(f"{path.name} is refused: its directory takes {megabytes(size)}; zips whose "
                                 f"directory fits in {megabytes(MAX_DIRECTORY_BYTES)} are opened (at most "
                                 f"{MAX_ZIP_ENTRIES:,} entries).")
            f.seek(start)
            count = count_records(f.read(size), path.name)
        (budget or Budget()).spend("entries", count, path.name)
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except InputError:
        raise
    except ZIP_ERRORS as e:
        raise UnreadableZip(path, e) from None
    if len(infos) != count:   # zipfile read the same bytes: a disagreement means this reader is wrong
        raise UnreadableZip(path, f"its directory holds {count} records, and zipfile read {len(infos)}")
    return infos


def directory_span(f) -> tuple[int, int]:
    """(offset, size) of the central directory, found as zipfile finds it: the end record (after at most a
    64 KB comment), and its zip64 record where the end record points there."""
    f.seek(0, io.SEEK_END)
    file_size = f.tell()
    tail_start = max(0, file_size - END.size - 65535)
    f.seek(tail_start)
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + END.size > len(tail):
        raise zipfile.BadZipFile("File is not a zip file")
    location = tail_start + at
    size = END.unpack_from(tail, at)[5]   # (signature, 4 counts, directory size, offset, comment length)
    if location >= LOCATOR.size + END64.size:
        f.seek(location - LOCATOR.size)
        locator = f.read(LOCATOR.size)
        if locator[:4] == b"PK\x06\x07":
            location -= LOCATOR.size + END64.size
            f.seek(location)
            record = END64.unpack(f.read(END64.size))
            if record[0] != b"PK\x06\x06":
                raise zipfile.BadZipFile("Corrupt zip64 end of central directory record")
            size = record[8]
    if size > location:
        raise zipfile.BadZipFile("the central directory would start before the file does")
    return location - size, size


def count_records(directory: bytes, name: str) -> int:
    """How many central directory records `directory` holds, walked header by header (zipfile walks the
    same bytes the same way); past MAX_ZIP_ENTRIES the upload is refused at once."""
    count, at = 0, 0
    while at < len(directory):
        if len(directory) - at < RECORD.size or directory[at:at + 4] != b"PK\x01\x02":
            raise zipfile.BadZipFile("Bad magic number for central directory")
        fields = RECORD.unpack_from(directory, at)
        at += RECORD.size + fields[10] + fields[11] + fields[12]   # name, extra field, comment
        count += 1
        if count > MAX_ZIP_ENTRIES:
            raise InputError(f"{name} has more than {MAX_ZIP_ENTRIES:,} entries; zips of at most "
                             f"{MAX_ZIP_ENTRIES:,} are opened. Please split it (at most {MAX_ITEMS} items "
                             "are run at once).")
    return count


def skipped(info: zipfile.ZipInfo) -> bool:
    """Folders, hidden files and what operating systems add to zips (__MACOSX/, .DS_Store): not items."""
    parts = [p for p in re.split(r"[\\/]", info.filename) if p not in ("", ".")]
    hidden = any(p in JUNK_NAMES or p.startswith(".") and p != ".." for p in parts)
    return not parts or info.filename.endswith("/") or hidden


def check_member(archive: str, info: zipfile.ZipInfo) -> None:
    """Refuse the zip for a member named outside it, a symbolic link or a zip bomb: such a zip was made
    to harm whoever extracts it, and none of it is read."""
    name = info.filename
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise InputError(f"{archive} is refused: its member '{name}' points outside the archive (an absolute "
                         "path or '..').")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InputError(f"{archive} is refused: its member '{name}' is a symbolic link.")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
        raise InputError(f"{archive} is refused: its member '{name}' would expand {ratio:,.0f} times, from "
                         f"{megabytes(info.compress_size)} to {megabytes(info.file_size)} (a zip bomb).")


def member_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str | None = None) -> bytes:
    """One member's bytes. At most its declared size is read (zipfile also stops there and checks the CRC),
    and that size was checked against the limits before anything was read. `name` says which file in the
    messages (default: "The file", for a batch row that names it)."""
    try:
        with archive.open(info) as f:
            data = f.read(info.file_size + 1)
    except ZIP_ERRORS as e:
        raise InputError(f"{name} could not be read ({e})." if name else
                         f"The file could not be read from the zip ({e}).") from None
    if len(data) > info.file_size:
        raise InputError(f"{name or 'The file'} holds more than the zip's directory says; it was not read.")
    return data


# --------------------------------------------------------------------------------------------- text

def read_text(path: Path) -> str:
    """A whole UTF-8 text file (a byte-order mark is dropped); anything else is refused, in words."""
    if not path.is_file():
        raise InputError(f"The uploaded file {path.name} is missing.")
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise InputError(f"{path.name} is {megabytes(size)}; text files up to {megabytes(MAX_TEXT_BYTES)} are read.")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path.name} is not UTF-8 text (byte 0x{data[e.start]:02x} at position {e.start}). "
                         "Please save it as UTF-8 and upload it again.") from None


def text_lines(name: str, text: str, budget: Budget):
    """(line number, line) of each line of `text` (any of \\n, \\r\\n, \\r ends one), lazily, each spent
    from `budget`: a file of millions of lines is refused at the limit, not split first."""
    for n, line in enumerate(io.StringIO(text, newline=None), 1):
        budget.spend("lines", 1, name)
        yield n, line.rstrip("\n")


def guess_delimiter(sample: str) -> str:
    """The delimiter (comma, semicolon, tab or bar) that splits the most of the first records of `sample`
    into the same number of cells (more than one); a comma when none does. Not csv.Sniffer: its
    quote-guessing regular expression backtracks (measured: 7.8 s on 64 KB of "'a,'" repeated)."""
    best, best_score = ",", 0
    for delimiter in ",;\t|":
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
        try:
            widths = [len(row) for _, row in zip(range(20), reader) if row]
        except csv.Error:
            continue
        if len(widths) > 1:
            widths = widths[:-1]      # the sample may end inside the last record
        width = max(set(widths), key=widths.count) if widths else 0
        score = widths.count(width) if width > 1 else 0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def csv_records(name: str, text: str, budget: Budget):
    """(line number, cells) of each record of the CSV `text`, lazily, split at its guessed delimiter:
    records are spent from `budget` as lines, their cells as cells; a record over MAX_COLUMNS cells, a
    cell over the csv module's limit or a malformed file is refused in words."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=guess_delimiter(text[:SNIFF_BYTES]))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(csv_problem(name, reader.line_num, e)) from None
        budget.spend("lines", 1, name)
        if len(row) > MAX_COLUMNS:
            raise InputError(f"{name}, line {reader.line_num}: {len(row):,} cells; CSV files of at most "
                             f"{MAX_COLUMNS} columns are read. Please keep only the columns needed.")
        budget.spend("cells", len(row), name)
        yield reader.line_num, row


def csv_problem(name: str, line: int, error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return (f"{name}, line {line}: a cell holds more than {CELL_LIMIT:,} characters, the most one CSV cell "
                "may hold here. Please shorten it (or check for a quote that is never closed).")
    return f"{name} is not a CSV file that can be read: {error} (line {line})."


def text_column(rows: list[tuple[int, list[str]]], columns: tuple[str, ...]) -> tuple[int, bool]:
    """(index of the text column, whether the first row is a header) of non-empty `rows`:
    1. the column whose header is one of `columns` (case-insensitive), or
    2. the only column, when there is one (no header then), or
    3. the first column with a cell that is not a number below the header (one pass over the cells)."""
    header = [cell.strip().lower() for cell in rows[0][1]]
    for wanted in columns:
        if wanted.lower() in header:
            return header.index(wanted.lower()), True
    if len(header) <= 1:
        return 0, False
    wordy = [False] * len(header)
    for _, row in rows[1:]:
        for j, cell in enumerate(row[:len(header)]):
            if not wordy[j] and cell.strip() and not is_number(cell.strip()):
                wordy[j] = True
    return (wordy.index(True) if any(wordy) else 0), True


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
