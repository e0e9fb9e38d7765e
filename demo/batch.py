"""Batch mode: many inputs at once -> a table of predictions, downloadable as CSV.

A tab adds it with `batch_panel`, giving it a reader for its inputs:
- `FileBatch`: several files and/or zips of them (images, audio clips). Zip members are read in memory,
  never extracted: nothing from an upload is written to disk.
- `TextBatch`: .txt files (one text per non-empty line) or .csv files (one text per row).

Nothing in an upload is trusted. A whole batch is refused, with a message that says why, when it is over
the limits below or when a zip is hostile (a member named outside the archive, a symbolic link, a zip
bomb). One bad item never is: a broken image, an empty clip or a file of the wrong type gets its message
in its own row, and every other item is still run. Each item goes through the task's own decoder, with
the same limits and messages as a single input.

The limits are the constants below, each with its reason; the server also refuses any one upload over
the app's MAX_FILE_SIZE (50 MB) before this code runs.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from training.tasks import InputError

# 500 rows: with the shipped models on one CPU thread, 500 images take about 6 s (11 ms each) and 500 clips
# about 1.5 s (2.5 ms each, measured), so a batch answers well within MAX_SECONDS on a busy Space.
MAX_ITEMS = 500
MAX_TOTAL_BYTES = 200 * 2**20      # files and (declared) zip members of one batch, together
MAX_ITEM_BYTES = 50 * 2**20        # one file or zip member, by default: the app's upload limit
MAX_ZIP_ENTRIES = 2_000            # entries in one zip's directory, folders and junk included
# A member over RATIO_FLOOR that expands more than MAX_RATIO times is a zip bomb. PNG, JPEG, MP3 and FLAC
# are already compressed (ratio ~1). Silence is what deflates most (measured: a silent 16 kHz WAV, 320
# times for 1 s, 960 times for 30 s), but a 30 s clip, the most the speech decoder reads, is 0.9 MB:
# under the floor. Only longer silent recordings (a minute at 16 kHz, 30 s at 48 kHz stereo) are refused.
MAX_RATIO = 100
RATIO_FLOOR = 2**20
MAX_TEXT_BYTES = 10 * 2**20        # one .txt or .csv file
MAX_SECONDS = 300.0                # after this, a batch starts no new item (their rows say so): a slow
                                   # device or a queue of big files cannot hold a worker for long
PREVIEW_CHARS = 200                # of each text, in the table's text column
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"}   # with hidden files: skipped silently

log = logging.getLogger(__name__)
# What zipfile raises for a damaged or unusual zip (found by fuzzing uploads): unsupported versions and
# methods, encrypted members (RuntimeError), and fields that point past the end of the data.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError,
              IndexError, struct.error)


def megabytes(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


# ------------------------------------------------------------------------------------------ items

@dataclass(frozen=True)
class ZipMember:
    """A file inside an uploaded zip, read only when its item runs (see `item_data`)."""
    archive: Path
    info: zipfile.ZipInfo


@dataclass
class Item:
    """One row of a batch: a name for people and what to classify: an uploaded file's Path, a ZipMember,
    or a text. An item with an `error` is not run: its row shows the error."""
    name: str
    source: Path | ZipMember | str | None = None
    error: str = ""
    size: int = 0        # bytes, counted against MAX_TOTAL_BYTES


def check_batch(items: list[Item], noun: str) -> list[Item]:
    """The limits a whole batch must meet; it is refused, never cut short."""
    if not any(not item.error for item in items):
        found = f" ({items[0].name}: {items[0].error})" if items else ""
        raise InputError(f"No {noun}s were found in the upload{found}.")
    if len(items) > MAX_ITEMS:
        raise InputError(f"The upload holds {len(items)} items; at most {MAX_ITEMS} are run at once. Please "
                         "split it into smaller batches.")
    total = sum(item.size for item in items if not item.error)
    if total > MAX_TOTAL_BYTES:
        raise InputError(f"The upload holds {megabytes(total)} of {noun}s; at most {megabytes(MAX_TOTAL_BYTES)} "
                         "are run at once. Please split it into smaller batches.")
    return items


def item_data(item: Item):
    """What an item's decoder is given: the path of an uploaded file, the bytes of a zip member, or the text."""
    if isinstance(item.source, ZipMember):
        return read_member(item.source)
    return item.source


def read_member(member: ZipMember) -> bytes:
    """A zip member's bytes, in memory (`member_bytes`)."""
    try:
        archive = zipfile.ZipFile(member.archive)
    except ZIP_ERRORS as e:
        raise InputError(f"The file could not be read from the zip ({e}).") from None
    with archive:
        return member_bytes(archive, member.info)


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


# ------------------------------------------------------------------------------------ file batches

@dataclass(frozen=True)
class FileBatch:
    """Reads uploaded files and zips of them into items. `noun` names one ("image", "clip") in messages;
    `extensions` are those the task's decoder reads (lower case, with the dot); a file or zip member over
    `max_bytes` gets an error row, like a single input over the limit."""
    noun: str
    extensions: tuple[str, ...]
    max_bytes: int = MAX_ITEM_BYTES

    @property
    def file_types(self) -> list[str]:
        return [*self.extensions, ".zip"]

    @property
    def help(self) -> str:
        kinds = ", ".join(e.lstrip(".").upper() for e in self.extensions)
        return (f"Upload several {self.noun}s ({kinds}) or a zip of them, up to {MAX_ITEMS} at once "
                f"({megabytes(MAX_TOTAL_BYTES)} in all, {megabytes(self.max_bytes)} each). A file that cannot be "
                "read gets its reason in its row; the others are still run.")

    def read(self, paths) -> list[Item]:
        items: list[Item] = []
        for path in map(Path, paths):
            items += self.zip_items(path) if path.suffix.lower() == ".zip" else [self.file_item(path)]
        return check_batch(items, self.noun)

    def file_item(self, path: Path) -> Item:
        if not path.is_file():
            return Item(path.name, error="The uploaded file is missing.")
        return self.checked(Item(path.name, path, size=path.stat().st_size))

    def checked(self, item: Item) -> Item:
        """The item, or an error row for a file type the decoder does not read or a file over the limit."""
        suffix = PurePosixPath(item.name).suffix.lower()
        if suffix == ".zip":
            item.error = "A zip inside a zip is not opened; upload it on its own."
        elif suffix not in self.extensions:
            kinds = ", ".join(self.extensions)
            item.error = (f"Not read: {suffix or 'a file without an extension'} is not one of the {self.noun} "
                          f"types read here ({kinds}).")
        elif item.size > self.max_bytes:
            item.error = (f"The file is {megabytes(item.size)}; {self.noun}s up to {megabytes(self.max_bytes)} "
                          "are accepted.")
        return item

    def zip_items(self, path: Path) -> list[Item]:
        """One item per file in the zip, from its directory alone: nothing is decompressed here."""
        try:
            infos = zip_directory(path)
        except UnreadableZip as e:
            return [Item(path.name, error=f"This is not a zip file that can be read ({e.reason}).")]
        members = [info for info in infos if not skipped(info)]
        for info in members:
            check_member(path.name, info)
        declared = sum(info.file_size for info in members)
        if declared > MAX_TOTAL_BYTES:
            raise InputError(f"{path.name} holds {megabytes(declared)} once uncompressed; at most "
                             f"{megabytes(MAX_TOTAL_BYTES)} are run at once.")
        return [self.member_item(path, info) for info in members]

    def member_item(self, path: Path, info: zipfile.ZipInfo) -> Item:
        item = self.checked(Item(f"{path.name}/{info.filename}", ZipMember(path, info), size=info.file_size))
        if not item.error and info.flag_bits & 0x1:
            item.error = "The file is encrypted in the zip (it has a password); it was not read."
        return item


class UnreadableZip(InputError):
    """A file that is no zip that can be read; `reason` is what the zip reader said."""

    def __init__(self, path: Path, reason: object):
        super().__init__(f"{path.name} could not be read as a zip ({reason}).")
        self.reason = reason


def zip_directory(path: Path) -> list[zipfile.ZipInfo]:
    """The entries of the zip at `path`. Their count is checked in the zip's end record before zipfile parses
    (and allocates) the whole directory, and again after (a zip64 end record does not tell): too many is an
    InputError that refuses the upload; a file that is no readable zip, an UnreadableZip."""
    try:
        with path.open("rb") as f:
            declared = declared_entries(f)
    except ZIP_ERRORS as e:
        raise UnreadableZip(path, e) from None
    check_entry_count(path.name, declared)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except ZIP_ERRORS as e:
        raise UnreadableZip(path, e) from None
    check_entry_count(path.name, len(infos))
    return infos


def declared_entries(f) -> int | None:
    """The entry count in a zip's end record, read before zipfile parses (and allocates) its whole
    directory; None when it cannot tell (no end record, or a zip64 one: zipfile then reads the count)."""
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 22 - 65535))    # the end record (22 bytes) plus its longest comment
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    count = struct.unpack("<H", tail[at + 10:at + 12])[0]
    return None if count == 0xFFFF else count


def check_entry_count(name: str, count: int | None) -> None:
    if count is not None and count > MAX_ZIP_ENTRIES:
        raise InputError(f"{name} has {count} entries; zips of at most {MAX_ZIP_ENTRIES} are opened. Please "
                         f"split it (at most {MAX_ITEMS} items are run at once).")


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


# ------------------------------------------------------------------------------------ text batches

@dataclass(frozen=True)
class TextBatch:
    """Reads .txt and .csv files (UTF-8, with or without a byte-order mark) into one item per text.

    .txt: every non-empty line is a text. .csv: its dialect (comma, semicolon, tab or bar; quoting) is
    sniffed, then the texts are the cells of
    1. the column whose header is one of `columns` (case-insensitive; the task's input column names), or
    2. the only column, when there is one: every row is then a text, the first included, or
    3. the first column that is not all numbers, the first row being its header.
    Blank texts are skipped; a row too short for the column gets an error row.
    """
    columns: tuple[str, ...] = ("text",)
    noun: str = "text"

    @property
    def file_types(self) -> list[str]:
        return [".txt", ".csv"]

    @property
    def help(self) -> str:
        return (f"Upload .txt files (one {self.noun} per line) or .csv files (a `{self.columns[0]}` column, or the "
                f"only or first text column), UTF-8, up to {MAX_ITEMS} {self.noun}s at once. Each row of the "
                "table gives the file and line.")

    def read(self, paths) -> list[Item]:
        items: list[Item] = []
        for path in map(Path, paths):
            suffix = path.suffix.lower()
            if suffix not in self.file_types:
                items.append(Item(path.name, error=f"Not read: only .txt and .csv files are read here, not "
                                                   f"{suffix or 'a file without an extension'}."))
                continue
            text = read_text(path)
            items += csv_items(path.name, text, self.columns) if suffix == ".csv" else line_items(path.name, text)
        return check_batch(items, self.noun)


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


def text_item(name: str, line: int, text: str) -> Item:
    return Item(f"{name}:{line}", text, size=len(text.encode("utf-8", "surrogatepass")))


def line_items(name: str, text: str) -> list[Item]:
    lines = re.split(r"\r\n|\r|\n", text)
    return [text_item(name, n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


def csv_rows(name: str, text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of each record, in the sniffed dialect (the excel one when sniffing fails)."""
    try:
        dialect = csv.Sniffer().sniff(text[:64 * 1024], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise InputError(f"{name} is not a CSV file that can be read: {e} (line {reader.line_num}).") from None


def text_column(rows: list[tuple[int, list[str]]], columns: tuple[str, ...]) -> tuple[int, bool]:
    """(index of the text column, whether the first row is a header): see `TextBatch`."""
    header = [cell.strip().lower() for cell in rows[0][1]]
    for wanted in columns:
        if wanted.lower() in header:
            return header.index(wanted.lower()), True
    if len(header) <= 1:
        return 0, False
    for j in range(len(header)):
        cells = [row[j].strip() for _, row in rows[1:] if j < len(row) and row[j].strip()]
        if cells and not all(is_number(c) for c in cells):
            return j, True
    return 0, True


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def csv_items(name: str, text: str, columns: tuple[str, ...]) -> list[Item]:
    rows = [(n, row) for n, row in csv_rows(name, text) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    j, has_header = text_column(rows, columns)
    heading = rows[0][1][j].strip() if has_header else f"column {j + 1}"
    items = []
    for n, row in rows[1:] if has_header else rows:
        if j >= len(row):
            items.append(Item(f"{name}:{n}", error=f"This row has no '{heading}' cell."))
        elif row[j].strip():
            items.append(text_item(name, n, row[j].strip()))
    return items


# ------------------------------------------------------------------------------------------ running

def run_batch(predictor, items: list[Item], *, to_raw=None, notes=None, progress=None,
              max_seconds: float = MAX_SECONDS) -> list[dict]:
    """One row per item (a dict, in column order): its prediction, or why it has none.

    `to_raw(predictor, data)` turns what `item_data` gives (a path, bytes or a text) into what
    `predictor.predict` takes (default: as it is); `notes(predictor, raw)` gives sentences for the row's
    notes column (no column without it); `progress(done, total)` is called before each item.
    """
    threshold = float(predictor.config.get("unsure_threshold") or 0.0)
    start = time.monotonic()
    rows = []
    for done, item in enumerate(items):
        if progress is not None:
            progress(done, len(items))
        error = item.error
        if not error and time.monotonic() - start > max_seconds:
            error = f"Not run: the batch reached its time limit ({max_seconds:g} s). Please run the rest again."
        if error:
            rows.append(table_row(item, notes is not None, error=error))
            continue
        rows.append(predict_row(predictor, item, to_raw, notes, threshold))
    return rows


def predict_row(predictor, item: Item, to_raw, notes, threshold: float) -> dict:
    try:
        data = item_data(item)
        raw = to_raw(predictor, data) if to_raw is not None else data
        probs = predictor.predict(raw)
        said = list(notes(predictor, raw)) if notes is not None else []
    except InputError as e:
        return table_row(item, notes is not None, error=str(e))
    except Exception as e:   # a fault in one item must not lose the others: logged, and said in its row
        log.exception("batch item %r failed", item.name)
        return table_row(item, notes is not None, error=f"This item could not be classified ({type(e).__name__}).")
    ranked = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)
    (label, p), (second, q) = ranked[0], ranked[1] if len(ranked) > 1 else ("", None)
    return table_row(item, notes is not None, label=label, confidence=round(p, 4), second_label=second,
                     second_confidence=None if q is None else round(q, 4), unsure=p < threshold,
                     notes=" ".join(said))


def table_row(item: Item, with_notes: bool, **values) -> dict:
    row = {"name": item.name}
    if isinstance(item.source, str):
        row["text"] = item.source[:PREVIEW_CHARS] + ("…" if len(item.source) > PREVIEW_CHARS else "")
    for column in ("label", "confidence", "second_label", "second_confidence", "unsure"):
        row[column] = values.get(column, "" if column.endswith("label") else None)
    if with_notes:
        row["notes"] = values.get("notes", "")
    row["error"] = values.get("error", "")
    return row


def as_table(rows: list[dict]) -> dict:
    """Rows -> {"headers", "data"} for a gr.Dataframe; the text column only when some row has one."""
    headers = list(rows[0]) if rows else ["name", "label", "confidence", "error"]
    if any("text" in row for row in rows) and "text" not in headers:
        headers.insert(1, "text")
    return {"headers": headers, "data": [[row.get(h, "") for h in headers] for row in rows]}


def csv_cell(value):
    """A cell as written to the CSV. A text starting with = + - @ would run as a formula in a spreadsheet,
    so it gets a leading apostrophe (the usual escape; spreadsheets hide it)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(table: dict, model_name: str, folder: str | Path | None = None) -> str:
    """The table as <model>-predictions.csv in a fresh folder under `folder` (default: the system's temp
    folder), UTF-8 with a byte-order mark so that spreadsheets read accents and scripts right."""
    stem = re.sub(r"[^\w.-]", "_", model_name) or "model"
    path = Path(tempfile.mkdtemp(prefix="batch-", dir=folder)) / f"{stem}-predictions.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(table["headers"])
        writer.writerows([csv_cell(v) for v in row] for row in table["data"])
    return str(path)


# ------------------------------------------------------------------------------------------------ UI

def upload_paths(files) -> list[str]:
    """gr.File(file_count="multiple") gives a list of paths (or one, or None)."""
    if not files:
        return []
    return [str(f) for f in (files if isinstance(files, (list, tuple)) else [files])]


def batch_panel(models, picker, reader, *, api_name: str, to_raw=None, notes=None, title: str = "Many at once"):
    """A closed accordion that runs the picked model on a whole upload: files (or zips), a Run button, the
    table of predictions and its CSV, through one named API endpoint taking (files, model_name).

    `reader` is a `FileBatch` or a `TextBatch` (or any object with `read(paths) -> list[Item]`,
    `file_types` and `help`); `to_raw` and `notes` are passed to `run_batch`. Call it inside a tab's Blocks.
    """
    import gradio as gr

    from demo.tabs.common import user_errors

    with gr.Accordion(title, open=False):
        gr.Markdown(reader.help)
        files = gr.File(file_count="multiple", file_types=reader.file_types, label="Files to classify")
        button = gr.Button("Classify all", variant="primary")
        table = gr.Dataframe(label="Predictions", interactive=False, wrap=True, max_height=400)
        download = gr.File(label="Predictions as CSV", interactive=False)

    @user_errors
    def classify_batch(files, model_name: str | None = None, progress=gr.Progress()):
        predictor = models.get(model_name)
        paths = upload_paths(files)
        if not paths:
            raise InputError("Upload some files first.")
        items = reader.read(paths)
        rows = run_batch(predictor, items, to_raw=to_raw, notes=notes,
                         progress=lambda done, total: progress((done, total), desc="Classifying", unit="items"))
        result = as_table(rows)
        return result, write_csv(result, predictor.name, download.GRADIO_CACHE)

    classify_batch.__doc__ = ("A table of predictions, one row per uploaded item (file, zip member or line): "
                              "top label, its confidence, the second label, whether the model is unsure, and "
                              "any error; and the table as a CSV file.")
    button.click(classify_batch, [files, picker], [table, download], api_name=api_name)
    return files, table, download

