"""Batch mode: many inputs at once -> a table of predictions, downloadable as CSV.

A tab adds it with `batch_panel`, giving it a reader for its inputs:
- `FileBatch`: several files and/or zips of them (images, audio clips). Zip members are read in memory,
  never extracted: nothing from an upload is written to disk.
- `TextBatch`: .txt files (one text per non-empty line) or .csv files (one text per row).

Nothing in an upload is trusted: it is read through demo/uploads.py, counted while it is read, and the
whole batch is refused, with a message that says why, when it passes a limit (files, items, bytes, zip
entries, lines, cells) or when a zip is hostile (a member named outside the archive, a symbolic link, a zip
bomb). One bad item never is: a broken image, an empty clip or a file of the wrong type gets its message
in its own row, and every other item is still run. Each item goes through the task's own decoder, with
the same limits and messages as a single input, and its row comes from the tabs' result record
(`demo.tabs.common.result_record`), so a row says what the JSON endpoint would.

A tab's batches run one at a time and a few wait (demo/lanes.py); a batch stops starting new items after
MAX_SECONDS, and Cancel stops it between two items.
"""

from __future__ import annotations

import csv
import logging
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from demo.uploads import (MAX_ITEMS, MAX_TEXT_BYTES, MAX_TOTAL_BYTES, Budget, UnreadableZip, check_member,
                          csv_records, megabytes, member_bytes, read_text, skipped, text_column, text_lines,
                          zip_directory, ZIP_ERRORS)
from training.tasks import InputError

MAX_ITEM_BYTES = 50 * 2**20        # one file or zip member, by default: the app's upload limit
MAX_SECONDS = 300.0                # after this, a batch starts no new item (their rows say so): a slow
                                   # device or a queue of big files cannot hold a worker for long
BATCH_WAITING = 2                  # batches of one tab waiting behind the one that runs; more are refused
PREVIEW_CHARS = 200                # of each text, in the table's text column

log = logging.getLogger(__name__)


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
    size: int = 0        # bytes, spent from the upload's Budget


def counted(items: list[Item], budget: Budget) -> list[Item]:
    """Spend `items` from the upload's budget: each is an item (error rows too: they are rows of the table),
    and those to be run count their bytes."""
    for item in items:
        budget.spend("items")
        if not item.error:
            budget.spend("bytes", item.size)
    return items


def found(items: list[Item], noun: str) -> list[Item]:
    if not any(not item.error for item in items):
        said = f" ({items[0].name}: {items[0].error})" if items else ""
        raise InputError(f"No {noun}s were found in the upload{said}.")
    return items


def item_data(item: Item):
    """What an item's decoder is given: the path of an uploaded file, the bytes of a zip member, or the text."""
    if isinstance(item.source, ZipMember):
        try:
            archive = zipfile.ZipFile(item.source.archive)
        except ZIP_ERRORS as e:
            raise InputError(f"The file could not be read from the zip ({e}).") from None
        with archive:
            return member_bytes(archive, item.source.info)
    return item.source


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
        paths = [Path(p) for p in paths]
        budget = Budget(self.noun)
        budget.spend("files", len(paths))      # counted before any is opened
        items: list[Item] = []
        for path in paths:
            new = self.zip_items(path, budget) if path.suffix.lower() == ".zip" else [self.file_item(path)]
            items += counted(new, budget)
        return found(items, self.noun)

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

    def zip_items(self, path: Path, budget: Budget) -> list[Item]:
        """One item per file in the zip, from its directory alone: nothing is decompressed here."""
        try:
            infos = zip_directory(path, budget)
        except UnreadableZip as e:
            return [Item(path.name, error=f"This is not a zip file that can be read ({e.reason}).")]
        members = [info for info in infos if not skipped(info)]
        for info in members:
            check_member(path.name, info)
        return [self.member_item(path, info) for info in members]

    def member_item(self, path: Path, info: zipfile.ZipInfo) -> Item:
        item = self.checked(Item(f"{path.name}/{info.filename}", ZipMember(path, info), size=info.file_size))
        if not item.error and info.flag_bits & 0x1:
            item.error = "The file is encrypted in the zip (it has a password); it was not read."
        return item


# ------------------------------------------------------------------------------------ text batches

@dataclass(frozen=True)
class TextBatch:
    """Reads .txt and .csv files (UTF-8, with or without a byte-order mark) into one item per text.

    .txt: every non-empty line is a text. .csv: its delimiter (comma, semicolon, tab or bar) is guessed,
    then the texts are the cells of the column `uploads.text_column` chooses: the one whose header is one
    of `columns` (case-insensitive; the task's input column names), or the only column (every row is then a
    text, the first included), or the first column that is not all numbers (the first row its header).
    Blank texts are skipped; a row too short for the column gets an error row. All the files of an upload
    together hold at most MAX_TEXT_BYTES.
    """
    columns: tuple[str, ...] = ("text",)
    noun: str = "text"

    @property
    def file_types(self) -> list[str]:
        return [".txt", ".csv"]

    @property
    def help(self) -> str:
        return (f"Upload .txt files (one {self.noun} per line) or .csv files (a `{self.columns[0]}` column, or the "
                f"only or first text column), UTF-8, up to {MAX_ITEMS} {self.noun}s at once "
                f"({megabytes(MAX_TEXT_BYTES)} in all). Each row of the table gives the file and line.")

    def read(self, paths) -> list[Item]:
        paths = [Path(p) for p in paths]
        budget = Budget(self.noun, bytes=MAX_TEXT_BYTES)
        budget.spend("files", len(paths))
        items: list[Item] = []
        for path in paths:
            suffix = path.suffix.lower()
            if suffix not in self.file_types:
                items += counted([Item(path.name, error=f"Not read: only .txt and .csv files are read here, not "
                                                        f"{suffix or 'a file without an extension'}.")], budget)
                continue
            if path.is_file():
                budget.spend("bytes", path.stat().st_size, path.name)   # before the file is read
            text = read_text(path)
            new = (csv_items(path.name, text, self.columns, budget) if suffix == ".csv"
                   else line_items(path.name, text, budget))
            for item in new:
                budget.spend("items")
                items.append(item)
        return found(items, self.noun)


def text_item(name: str, line: int, text: str) -> Item:
    return Item(f"{name}:{line}", text, size=len(text.encode("utf-8", "surrogatepass")))


def line_items(name: str, text: str, budget: Budget):
    for n, line in text_lines(name, text, budget):
        if line.strip():
            yield text_item(name, n, line.strip())


def csv_items(name: str, text: str, columns: tuple[str, ...], budget: Budget):
    rows = [(n, row) for n, row in csv_records(name, text, budget) if any(cell.strip() for cell in row)]
    if not rows:
        return
    j, has_header = text_column(rows, columns)
    heading = rows[0][1][j].strip() if has_header else f"column {j + 1}"
    for n, row in rows[1:] if has_header else rows:
        if j >= len(row):
            yield Item(f"{name}:{n}", error=f"This row has no '{heading}' cell.")
        elif row[j].strip():
            yield text_item(name, n, row[j].strip())


# ------------------------------------------------------------------------------------------ running

def batch_rows(predictor, items: list[Item], *, to_raw=None, notes=None, max_seconds: float = MAX_SECONDS):
    """One row per item (a dict, in column order), lazily: its prediction, or why it has none. Closing the
    generator (a cancel) stops it between two items.

    `to_raw(predictor, data)` turns what `item_data` gives (a path, bytes or a text) into what
    `predictor.predict` takes (default: as it is); `notes(predictor, raw)` gives sentences for the row's
    notes column (no column without it).
    """
    start = time.monotonic()
    for item in items:
        error = item.error
        if not error and time.monotonic() - start > max_seconds:
            error = f"Not run: the batch reached its time limit ({max_seconds:g} s). Please run the rest again."
        yield table_row(item, notes is not None, error=error) if error else predict_row(predictor, item, to_raw, notes)


def run_batch(predictor, items: list[Item], *, to_raw=None, notes=None, progress=None,
              max_seconds: float = MAX_SECONDS) -> list[dict]:
    """Every row of `batch_rows`; `progress(done, total)` is called before each item."""
    rows = batch_rows(predictor, items, to_raw=to_raw, notes=notes, max_seconds=max_seconds)
    out = []
    for done in range(len(items)):
        if progress is not None:
            progress(done, len(items))
        out.append(next(rows))
    return out


def predict_row(predictor, item: Item, to_raw, notes) -> dict:
    from demo.tabs.common import result_record

    try:
        data = item_data(item)
        raw = to_raw(predictor, data) if to_raw is not None else data
        record = result_record(predictor, predictor.predict(raw), notes(predictor, raw) if notes else ())
    except InputError as e:
        return table_row(item, notes is not None, error=str(e))
    except Exception as e:   # a fault in one item must not lose the others: logged, and said in its row
        log.exception("batch item %r failed", item.name)
        return table_row(item, notes is not None, error=f"This item could not be classified ({type(e).__name__}).")
    return table_row(item, notes is not None, record=record)


def table_row(item: Item, with_notes: bool, record: dict | None = None, error: str = "") -> dict:
    """A row of the table: the item's name (and text), then its result record's top two labels, the unsure
    flag and notes, or empty cells and the error."""
    row = {"name": item.name}
    if isinstance(item.source, str):
        row["text"] = item.source[:PREVIEW_CHARS] + ("…" if len(item.source) > PREVIEW_CHARS else "")
    ranked = list(record["confidences"].items()) if record else []
    (label, p), (second, q) = (ranked + [("", None)] * 2)[:2]
    row.update(label=label, confidence=None if p is None else round(p, 4), second_label=second,
               second_confidence=None if q is None else round(q, 4), unsure=record["unsure"] if record else None)
    if with_notes:
        row["notes"] = " ".join(record["notes"]) if record else ""
    row["error"] = error
    return row


def as_table(rows: list[dict]) -> dict:
    """Rows -> {"headers", "data"} for a gr.Dataframe; the text column only when some row has one."""
    headers = list(rows[0]) if rows else ["name", "label", "confidence", "error"]
    if any("text" in row for row in rows) and "text" not in headers:
        headers.insert(1, "text")
    return {"headers": headers, "data": [[row.get(h, "") for h in headers] for row in rows]}


# ------------------------------------------------------------------------------------------ the CSV

# What a spreadsheet takes for the start of a formula, after any spaces and quotes in front of it (OWASP,
# "CSV Injection"): = + - @, their full-width forms (which some locales accept), and cells that start
# with a tab, a carriage return, a line feed or NUL, which some importers strip before they look.
FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CONTROL_STARTS = ("\t", "\r", "\n", "\0")
LEADING = " \t\r\n\"'\u00a0\u3000"


def csv_cell(value):
    """A cell as written to the CSV: a text a spreadsheet could run as a formula gets a leading apostrophe
    (the usual escape; spreadsheets show the text as it was), and every cell is quoted (`write_csv`)."""
    if value is None:
        return ""
    if isinstance(value, str) and (value.startswith(CONTROL_STARTS) or value.lstrip(LEADING).startswith(FORMULA_STARTS)):
        return "'" + value
    return value


def write_csv(table: dict, model_name: str, folder: str | Path | None = None) -> str:
    """The table as <model>-predictions.csv in a fresh folder under `folder` (default: the system's temp
    folder), UTF-8 with a byte-order mark so that spreadsheets read accents and scripts right."""
    stem = re.sub(r"[^\w.-]", "_", model_name) or "model"
    path = Path(tempfile.mkdtemp(prefix="batch-", dir=folder)) / f"{stem}-predictions.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        writer.writerow([csv_cell(h) for h in table["headers"]])
        writer.writerows([csv_cell(v) for v in row] for row in table["data"])
    return str(path)


# ------------------------------------------------------------------------------------------------ UI

def upload_paths(files) -> list[str]:
    """gr.File(file_count="multiple") gives a list of paths (or one, or None)."""
    if not files:
        return []
    return [str(f) for f in (files if isinstance(files, (list, tuple)) else [files])]


def batch_panel(models, picker, reader, *, api_name: str, to_raw=None, notes=None, title: str = "Many at once"):
    """A closed accordion that runs the picked model on a whole upload: files (or zips), a Run and a Cancel
    button, the table of predictions and its CSV, through one named API endpoint taking (files, model_name).

    `reader` is a `FileBatch` or a `TextBatch` (or any object with `read(paths) -> list[Item]`,
    `file_types` and `help`); `to_raw` and `notes` are passed to `batch_rows`. Call it inside a tab's Blocks.
    """
    import gradio as gr

    from demo.lanes import Lane
    from demo.tabs.common import user_errors

    with gr.Accordion(title, open=False):
        gr.Markdown(reader.help)
        files = gr.File(file_count="multiple", file_types=reader.file_types, label="Files to classify")
        with gr.Row():
            button = gr.Button("Classify all", variant="primary")
            cancel = gr.Button("Cancel", variant="stop")
        table = gr.Dataframe(label="Predictions", interactive=False, wrap=True, max_height=400)
        download = gr.File(label="Predictions as CSV", interactive=False)
    lane = Lane("batches", running=1, waiting=BATCH_WAITING)

    @user_errors
    def classify_batch(files, model_name: str | None = None, progress=gr.Progress()):
        predictor = models.get(model_name)
        paths = upload_paths(files)
        if not paths:
            raise InputError("Upload some files first.")
        with lane.ticket() as ticket:
            while ahead := lane.ahead(ticket, timeout=0.5):
                progress(0, desc=f"Waiting for {ahead} other batch{'es' * (ahead > 1)} to finish")
                yield gr.skip(), gr.skip()
            items, rows, shown = reader.read(paths), [], time.monotonic()
            for row in batch_rows(predictor, items, to_raw=to_raw, notes=notes):
                rows.append(row)
                progress((len(rows), len(items)), desc="Classifying", unit="items")
                if time.monotonic() - shown > 0.5:   # a cancel takes effect at a yield
                    shown = time.monotonic()
                    yield gr.skip(), gr.skip()
        result = as_table(rows)
        yield result, write_csv(result, predictor.name, download.GRADIO_CACHE)

    classify_batch.__doc__ = ("A table of predictions, one row per uploaded item (file, zip member or line): "
                              "top label, its confidence, the second label, whether the model is unsure, and "
                              "any error; and the table as a CSV file.")
    # No concurrency limit of Gradio's: the lane admits batches, so they never wait in (and fill) its queue.
    running = button.click(classify_batch, [files, picker], [table, download], api_name=api_name,
                           concurrency_limit=None, concurrency_id=f"{api_name}-lane")
    cancel.click(None, None, None, cancels=[running], api_visibility="private")
    return files, table, download
