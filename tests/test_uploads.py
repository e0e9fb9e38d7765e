"""Hostile uploads against demo/uploads.py and the batch readers: every one is refused (or read) by counting
while reading, with a message that names the limit; nothing is parsed past a limit. Inputs are generated
(tests/hostile_files.py); none is large on disk."""

from __future__ import annotations

import csv
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import hostile_files as hf
from demo import uploads
from demo.batch import FileBatch, TextBatch, csv_cell, write_csv
from training.tasks import InputError

IMAGES = FileBatch("image", (".png", ".jpg"))
TEXTS = TextBatch(("text",))


def written(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def no_zipfile_parse(monkeypatch):
    """Fail the test if zipfile is asked to parse a directory: the upload must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("zipfile parsed the directory of a zip that should have been refused first")
    monkeypatch.setattr(uploads.zipfile, "ZipFile", refuse)


# ------------------------------------------------------------------------------------------------- zips

def zip64_declaring(entries: int, declared: int) -> bytes:
    """`entries` directory records behind a zip64 end record that declares `declared` entries."""
    plain = hf.directory_records(entries)
    directory = plain[:-uploads.END.size]
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, declared, declared, len(directory), 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return directory + end64 + locator + end


@pytest.mark.parametrize("case,data,message", [
    ("a million records declared as one", lambda: hf.directory_records(1_000_000), "directory takes 44 MB"),
    ("3,000 records declared as one", lambda: hf.directory_records(3_000), "more than 2,000 entries"),
    ("records declared as 65535", lambda: hf.directory_records(3_000, declared=0xFFFF), "more than 2,000 entries"),
    ("a zip64 record declaring 1", lambda: zip64_declaring(3_000, 1), "more than 2,000 entries"),
    ("a 4 MB directory of long names", lambda: hf.directory_records(1_000, name=b"n" * 4_000), "directory takes 4 MB"),
])
def test_a_zip_directory_is_counted_in_its_own_bytes_before_zipfile_reads_it(tmp_path, no_zipfile_parse, case, data,
                                                                             message):
    path = written(tmp_path, "records.zip", data())
    with pytest.raises(InputError, match=message) as info:
        IMAGES.read([path])
    assert not isinstance(info.value, uploads.UnreadableZip)     # the upload is refused, not one row


def test_zip_entries_are_counted_across_every_zip_of_an_upload(tmp_path):
    junk = {f"__MACOSX/{i}": b"" for i in range(800)}      # entries, but no items: skipped as junk
    zips = [written(tmp_path, f"{k}.zip", hf.zip_of(junk)) for k in range(3)]
    assert len(uploads.zip_directory(zips[0])) == 800            # each alone is within the limit
    with pytest.raises(InputError, match="2.zip has more than 2,000 zip entries"):
        IMAGES.read(zips)


@pytest.mark.parametrize("case,data,reason", [
    ("a directory said to start before the file", lambda: hf.directory_records(10)[-22:], "before the file"),
    ("records without their signature", lambda: b"\0" * 460 + hf.directory_records(10)[-22:], "magic number"),
    ("a name flagged UTF-8 that is not", lambda: utf8_flagged(b"\xff\xfe.png"), "utf-8"),
])
def test_a_damaged_zip_is_one_row_that_says_so(tmp_path, case, data, reason):
    path = written(tmp_path, "damaged.zip", data())
    rows = IMAGES.read([path, hf_png(tmp_path)])
    assert "not a zip file that can be read" in rows[0].error and reason in rows[0].error.lower()
    assert not rows[1].error


def utf8_flagged(name: bytes) -> bytes:
    data = bytearray(hf.zip_of({"x" * len(name): b"data"}, compression=zipfile.ZIP_STORED))
    for signature, flags, offset in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = data.find(signature)
        data[at + flags:at + flags + 2] = struct.pack("<H", 0x800)
        data[at + offset:at + offset + len(name)] = name
    return bytes(data)


def hf_png(tmp_path: Path) -> Path:
    from PIL import Image

    return written(tmp_path, "good.png", hf.png(Image.new("RGB", (8, 8), (1, 2, 3))))


def test_the_files_of_an_upload_are_counted_before_any_is_opened(tmp_path):
    never_written = [tmp_path / f"{i}.png" for i in range(uploads.MAX_FILES + 1)]   # none exists
    with pytest.raises(InputError, match=f"more than {uploads.MAX_FILES} files"):
        IMAGES.read(never_written)
    with pytest.raises(InputError, match=f"more than {uploads.MAX_FILES} files"):
        TEXTS.read([p.with_suffix(".txt") for p in never_written])


# ------------------------------------------------------------------------------------------------- text

def test_a_txt_of_millions_of_lines_is_refused_at_the_limit_without_splitting_it(tmp_path):
    path = written(tmp_path, "lines.txt", hf.many_lines(1_000_000))
    tracemalloc.start()
    with pytest.raises(InputError, match=f"more than {uploads.MAX_ITEMS} texts"):
        TEXTS.read([path])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # The file's text (2 MB, decoded once) and a line at a time; splitting it took 190 bytes a line (190 MB).
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB"


@pytest.mark.parametrize("case,name,data,message", [
    ("only blank lines", "blank.txt", lambda: b"\n" * 30_000, "more than 10,000 lines"),
    ("20,000 columns", "wide.csv", lambda: hf.wide_csv(20_000, 20_000), "20,000 cells; CSV files of at most 100 col"),
    ("a header of 101 columns", "wide.csv", lambda: hf.wide_csv(101, 1), "101 cells"),
    ("200,000 cells", "cells.csv", lambda: (",".join("a" * 100) + "\n").encode() * 2_000, "more than 100,000 CSV cel"),
    ("a cell of 200,000 characters", "long.csv", lambda: hf.long_cell_csv(200_000), "more than 131,072 characters"),
    ("a quote never closed", "open.csv", lambda: b'text\n"' + b"x" * 140_000, "never closed"),
    ("what makes csv.Sniffer backtrack", "sniff.csv", lambda: b"'a,'" * 16_384, "16,385 cells"),
    ("11 MB in two files", "a.txt", lambda: b"x" * (11 * 2**19) + b"\n", "more than 10 MB of texts"),
])
def test_hostile_text_uploads_are_refused_in_words(tmp_path, case, name, data, message):
    path = written(tmp_path, name, data())
    paths = [path, written(tmp_path, "b.txt", path.read_bytes())] if case.startswith("11 MB") else [path]
    with pytest.raises(InputError, match=message):
        TEXTS.read(paths)


def test_a_csv_cell_at_the_limit_is_read(tmp_path):
    path = written(tmp_path, "long.csv", hf.long_cell_csv(uploads.CELL_LIMIT))
    assert [len(item.source) for item in TEXTS.read([path])] == [uploads.CELL_LIMIT]


def test_the_text_column_is_the_first_with_words_whatever_the_width(tmp_path):
    header = ",".join(f"n{j}" for j in range(99)) + ",review"
    rows = "".join(",".join(str(j) for j in range(99)) + f",words {i}\n" for i in range(50))
    got = TEXTS.read([written(tmp_path, "wide.csv", (header + "\n" + rows).encode())])
    assert [item.source for item in got[:2]] == ["words 0", "words 1"]


# ---------------------------------------------------------------------------------------------- the CSV

FORMULAS = ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1+1", "\r=1+1", "\n=1", "\0x", " =1+1", "  +cmd", '"=1+1"',
            "'=1+1", "\u00a0=1", "\u3000@x", "\uff1d1+1", "\uff0bcmd", " \"\t'=HYPERLINK(\"http://x\")"]
PLAIN = ["hello", "a=1", "1-2", "cat.png", "naïve café, ok", "", 'say "hi"']


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_cell_a_spreadsheet_could_run_is_escaped(tmp_path, cell):
    assert csv_cell(cell) == "'" + cell
    table = {"headers": ["name", "label"], "data": [[cell, "x"]]}
    with open(write_csv(table, "m", tmp_path), encoding="utf-8-sig", newline="") as f:
        assert list(csv.reader(f))[1] == ["'" + cell, "x"]     # one cell, as written, whatever it holds


@pytest.mark.parametrize("cell", PLAIN)
def test_plain_cells_are_written_as_they_are(cell):
    assert csv_cell(cell) == cell
