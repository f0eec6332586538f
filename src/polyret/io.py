"""The one io layer: strict atomic JSON, UTF-8 reading with clear errors, and the one output-folder
policy every command follows (TREC run and qrels files: `polyret.trec`, on the same writers).

Output-folder policy (`OutputDir`, `OutputFile`)
-----------------------------------------------
polyret marks every folder it writes with `.polyret-output.json` (`{"kind": "eval-lareqa", "complete":
false|true, ...}`); `complete` turns true only when the command finished. Opening `--out` then means:

| `--out` is ...                                   | without `--overwrite`        | with `--overwrite`                  |
|---|---|---|
| missing or an empty folder                       | created, written in place    | same                                |
| ours, same kind, incomplete (interrupted/failed) | continued in place (resume)  | fresh copy in a sibling, swapped in |
| ours, same kind, complete, same `settings`       | redone in place              | fresh copy in a sibling, swapped in |
| ours, same kind, complete, other settings        | refused (or reused: `reuse`) | fresh copy in a sibling, swapped in |
| ours, another kind                               | refused                      | refused                             |
| anything else non-empty (not made by polyret)    | refused                      | refused (never deleted)             |
| equal to / inside an input, or holding an input  | refused                      | refused                             |

With `--overwrite` the command writes into a sibling temporary folder (`.NAME.polyret-tmp-*`) and only
when it finished is that folder swapped in: the old folder is renamed aside, the new one renamed to
`NAME`, the old one deleted. A run that fails or is interrupted therefore leaves the old output intact
(its temp folder is removed; after SIGKILL the next run removes it). Between the two renames a crash can
leave `NAME` missing with `.NAME.polyret-old-*` beside it; the next open renames that back.

`settings` are the options that define what a command measures (data, model, index, ...; not batch
size or progress bars); the marker records them. Running the *same* command again on its finished
output is therefore accepted and redone in place (what the command caches, such as a corpus store,
is reused): a user whose job was killed near its end cannot know whether it finished, and the
documented answer to any interruption is "run the same command again". Other settings would replace
results measured differently, which needs `--overwrite`.

Folders written by polyret before markers existed are recognised by their signature files
(`legacy_files`) and treated as complete outputs of the kind.

JSON: `write_json` writes UTF-8, indent 2, keys in the caller's order (results are ordered for reading),
via a temp file + `os.replace` (never a half-written file). NaN and ±inf become `null`: JSON has no
NaN, and in polyret's results a non-finite number means "undefined" (e.g. Cross for one language), which
`null` states; `allow_nan=False` then guarantees nothing non-standard slips through. Objects that are
not plain data (after numpy scalars/arrays and paths are converted) raise `TypeError`: a bug, not input.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from polyret import __version__
from polyret.errors import PolyretError
from polyret.locking import OutputLock, current_umask, release_lock

MARKER = ".polyret-output.json"
_TMP_TAG = ".polyret-tmp-"
_OLD_TAG = ".polyret-old-"

Run = dict[str, list[tuple[str, float]]]
Qrels = dict[str, dict[str, int]]


# ---- JSON -----------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays become Python values, NaN/inf become None, paths strings."""
    # A numpy value exists only once numpy is imported: plain settings (an output folder's manifest,
    # written before any slow work) are converted without loading it.
    np = sys.modules.get("numpy")
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if np is not None and isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if np is not None and isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """The text `write_json` writes (strict JSON, indent 2, UTF-8 characters kept, trailing newline)."""
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically: a temp file in the same folder, flushed, then `os.replace`."""
    path = Path(path)
    with atomic_open(path, "w") as f:
        f.write(text)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON written atomically (see the module docstring for NaN -> null)."""
    return write_text(path, dumps_json(obj))


def is_atomic_temp(name: str, of: str) -> bool:
    """True for the temp file name `atomic_open(<folder>/<of>)` uses (left behind only by a SIGKILL)."""
    return name.startswith(f".{of}.") and name.endswith(".tmp")


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside `path`; on success it is fsynced and renamed to `path`, on error removed.

    For files written in pieces (TREC runs, JSONL, .npy): a reader never sees half a file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # see is_atomic_temp
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; the user's umask decides, as for open()
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- reading user text ----------------------------------------------------------------------


class TextLines:
    """A UTF-8 text file (`.gz` transparently) read line by line; a byte sequence that is not UTF-8
    raises a PolyretError naming the file, line and byte offset instead of a UnicodeDecodeError.

    Supports `with`, iteration, `readline()` and `read()` like a text file opened for reading.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PolyretError(f"{self.path} does not exist or is not a file")
        self._f = gzip.open(self.path, "rb") if self.path.suffix == ".gz" else open(self.path, "rb")
        self._offset = 0  # bytes consumed (of the decompressed stream)
        self._lineno = 0

    def _decode(self, raw: bytes) -> str:
        self._lineno += raw.count(b"\n") or 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            at = self._offset + e.start
            raise PolyretError(
                f"{self.path} is not UTF-8 text: byte {at} (line {self._lineno}) is {raw[e.start : e.start + 1]!r}; "
                "save the file as UTF-8"
            ) from None
        if self._offset == 0 and text.startswith("\ufeff"):  # a BOM is an encoding mark, not text
            text = text[1:]
        self._offset += len(raw)
        return text

    def readline(self) -> str:
        raw = self._f.readline()
        return self._decode(raw) if raw else ""

    def read(self) -> str:
        raw = self._f.read()
        return self._decode(raw) if raw else ""

    def __iter__(self) -> Iterator[str]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "TextLines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_text(path: str | Path) -> TextLines:
    """Open a user's UTF-8 text file (or `.gz`) for reading; see `TextLines`."""
    return TextLines(path)


def read_text(path: str | Path) -> str:
    """The whole UTF-8 text of a user's file, or a PolyretError naming file and byte offset."""
    with TextLines(path) as f:
        return f.read()


def read_json(path: str | Path) -> Any:
    """A user's JSON file: a PolyretError names the file and the line/column of a syntax error."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PolyretError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


# ---- output folders -------------------------------------------------------------------------


def read_marker(folder: Path) -> dict | None:
    """The polyret marker of `folder`, or None when there is none (or it is unreadable)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("kind"), str) else None


def _write_marker(folder: Path, kind: str, complete: bool, settings: dict | None = None) -> None:
    write_json(
        folder / MARKER,
        {
            "kind": kind,
            "complete": complete,
            "polyret": __version__,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({} if settings is None else {"settings": settings}),
        },
    )


def _settings_difference(recorded: Any, settings: dict) -> str:
    """' (made with index 'flat', now 'hnsw'; ...)' naming what differs, or '' when nothing was recorded."""
    if not isinstance(recorded, dict):
        return ""
    diffs = [
        f"{k} {recorded.get(k)!r}, now {settings.get(k)!r}"
        for k in sorted(set(recorded) | set(settings))
        if recorded.get(k) != settings.get(k)
    ]
    return f" made with other settings ({'; '.join(diffs)})" if diffs else ""


def _is_within(a: Path, b: Path) -> bool:
    """a == b or a inside b (resolved, so symlinks and `..` do not hide an overlap)."""
    try:
        a.resolve().relative_to(b.resolve())
        return True
    except ValueError:
        return False


def check_not_overlapping(out: Path, inputs: Iterable[str | Path | None], flag: str = "--out") -> None:
    """Refuse an output equal to an input, inside an input folder, or containing an input."""
    for inp in inputs:
        if inp is None:
            continue
        p = Path(inp).expanduser()
        if not p.exists():  # a model name such as 'default' or a hub id: nothing on disk to protect
            continue
        if _is_within(out, p):
            what = "is" if out.resolve() == p.resolve() else "is inside"
            raise PolyretError(f"{flag} {out} {what} the input {p}; choose an output outside the inputs")
        if _is_within(p, out):
            raise PolyretError(f"{flag} {out} contains the input {p}; choose an output that holds no input")


def _siblings(out: Path, tag: str) -> list[Path]:
    parent = out.parent if out.parent.exists() else None
    if parent is None:
        return []
    return sorted(parent.glob(f".{out.name}{tag}*"))


def _unmarked_start(folder: Path) -> bool:
    """A folder killed (SIGKILL) before its first marker was complete: empty, or only the marker's temp file."""
    return folder.is_dir() and all(is_atomic_temp(p.name, MARKER) for p in folder.iterdir())


def _recover(out: Path) -> None:
    """Finish or undo an overwrite that was killed: restore a renamed-aside old folder if `out` is
    missing, and remove our abandoned temp folders (those carrying our marker, or killed before it)."""
    olds = [p for p in _siblings(out, _OLD_TAG) if read_marker(p) is not None]
    if olds and not out.exists():
        os.rename(olds[-1], out)
        olds = olds[:-1]
    for p in olds + [p for p in _siblings(out, _TMP_TAG) if read_marker(p) is not None or _unmarked_start(p)]:
        shutil.rmtree(p, ignore_errors=True)


class OutputDir:
    """`--out` for one command run, following the module's policy.

    Construct it first (the checks run at once: refuse before loading a model), then use it as a
    context manager; write into `.path`. A normal exit marks the output complete (and swaps in the
    fresh folder under `--overwrite`); an exception removes a temp folder and leaves an in-place
    folder marked incomplete, which the next run continues.

    `reuse`: a complete output of this kind is reopened in place instead of refused (commands whose
    re-run reuses finished work, e.g. `experiment`). `legacy_files`: files that identify an output of
    this kind written before markers existed (`legacy_partial_files`: of an unfinished one).
    `settings`: the options defining what the command measures; a finished output made with the same
    ones is redone in place (`rerun` is then True), one made with others is refused.
    """

    def __init__(
        self,
        out: str | Path,
        kind: str,
        *,
        overwrite: bool = False,
        inputs: Iterable[str | Path | None] = (),
        reuse: bool = False,
        legacy_files: Sequence[str] = (),
        legacy_partial_files: Sequence[str] = (),
        flag: str = "--out",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.final = Path(out).expanduser()
        self.kind = kind
        self.settings = None if settings is None else to_jsonable(dict(settings))
        self.overwrite = overwrite
        self.flag = flag
        self._tmp: Path | None = None
        self.release: Callable[[], Any] = lambda: None  # lets other runs use this --out; set below
        self._entered = False
        out = self.final
        check_not_overlapping(out, inputs, flag)
        # Before anything looks at or tidies the folder: a second run on this --out stops here.
        # Released on exit from `with`, or when this object goes away unentered (finalize also runs at exit).
        self.release = weakref.finalize(self, release_lock, OutputLock.acquire(out, flag))
        try:
            self._check(kind, legacy_files, legacy_partial_files, reuse)
        except BaseException:
            self.release()
            raise

    def _check(self, kind: str, legacy_files: Sequence[str], legacy_partial_files: Sequence[str], reuse: bool) -> None:
        out, flag, overwrite = self.final, self.flag, self.overwrite
        _recover(out)
        if out.exists() and not out.is_dir():
            raise PolyretError(f"{flag} {out} exists and is not a folder")
        self.state = _classify_kind(out, kind, legacy_files, legacy_partial_files)
        if self.state == "foreign":
            raise PolyretError(
                f"{flag} {out} is not empty and was not written by polyret; polyret never replaces such a folder "
                "(--overwrite included): choose another " + flag
            )
        if self.state.startswith("other:"):
            raise PolyretError(
                f"{flag} {out} holds a polyret {self.state[6:]} output, not {kind}; choose another {flag}"
            )
        recorded = (read_marker(out) or {}).get("settings")
        # The same command again on its finished output: redone in place (see the module docstring).
        self.rerun = (
            self.state == "complete" and not overwrite and self.settings is not None and recorded == self.settings
        )
        if self.state == "complete" and not (overwrite or reuse or self.rerun):
            differs = "" if self.settings is None else _settings_difference(recorded, self.settings)
            raise PolyretError(
                f"{flag} {out} already holds a finished {kind} output{differs}; pass --overwrite to "
                f"replace it or choose another {flag}"
            )
        # Fresh work under --overwrite goes to a sibling; an empty or our own unfinished folder is used in place
        # unless --overwrite asks for a fresh start.
        self.fresh = overwrite and self.state in ("complete", "incomplete")

    @property
    def path(self) -> Path:
        """Where this run writes: the final folder, or the sibling temp folder under --overwrite."""
        if not self._entered:
            raise RuntimeError("OutputDir.path is only available inside `with OutputDir(...)`")
        return self._tmp if self._tmp is not None else self.final

    def __enter__(self) -> "OutputDir":
        self._entered = True
        if self.fresh:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}{_TMP_TAG}", dir=self.final.parent))
            os.chmod(self._tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; this folder becomes --out
            _write_marker(self._tmp, self.kind, complete=False, settings=self.settings)
        else:
            self.final.mkdir(parents=True, exist_ok=True)
            _write_marker(self.final, self.kind, complete=False, settings=self.settings)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                if self._tmp is not None:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                return
            self.commit()
        finally:
            self.release()

    def commit(self) -> None:
        """Mark the output complete; under --overwrite swap the fresh folder in for the old one."""
        if self._tmp is None:
            _write_marker(self.final, self.kind, complete=True, settings=self.settings)
            return
        _write_marker(self._tmp, self.kind, complete=True, settings=self.settings)
        old = None
        if self.final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.final.name}{_OLD_TAG}", dir=self.final.parent))
            old.rmdir()  # reserve a unique name, then move the previous output (it carries our marker) there
            os.rename(self.final, old)
        os.rename(self._tmp, self.final)
        self._tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _classify_kind(out: Path, kind: str, legacy_files: Sequence[str], legacy_partial_files: Sequence[str] = ()) -> str:
    """'empty' | 'complete' | 'incomplete' | 'other:<kind>' | 'foreign' for `out` seen by a `kind` command."""
    if not out.exists():
        return "empty"
    if _unmarked_start(out):
        # Empty, or a run SIGKILLed while writing the first marker of this folder: nothing else was written yet.
        for p in out.iterdir():
            p.unlink(missing_ok=True)
        return "empty"
    marker = read_marker(out)
    if marker is None:
        if any((out / f).exists() for f in legacy_files):
            return "complete"
        if any((out / f).exists() for f in legacy_partial_files):
            return "incomplete"
        return "foreign"
    if marker["kind"] != kind:
        return "other:" + marker["kind"]
    return "complete" if marker.get("complete") else "incomplete"


class OutputFile:
    """A single output file (`encode --out`, `build-pairs --out`): refused if it exists unless
    `overwrite`, refused if it is an input; written to a temp file beside it and renamed at the end,
    so a failed run leaves the old file intact.

        target = OutputFile(out, overwrite=..., inputs=[...])   # checks now
        with target.open("wb") as f: ...                          # atomic write
    """

    def __init__(
        self,
        out: str | Path,
        *,
        overwrite: bool = False,
        inputs: Iterable[str | Path | None] = (),
        suffix: str | None = None,
        flag: str = "--out",
    ) -> None:
        out = Path(out).expanduser()
        # numpy's np.save appends .npy to a name without it; name the file actually written.
        if suffix is not None and out.suffix != suffix:
            out = out.with_name(out.name + suffix)
        self.path = out
        check_not_overlapping(out, inputs, flag)
        if out.is_dir():
            raise PolyretError(f"{flag} {out} is a folder; give a file name")
        if out.exists() and not overwrite:
            raise PolyretError(f"{flag} {out} exists; pass --overwrite to replace it")
        if out.parent.is_dir():  # temp files of a run that was killed (SIGKILL) before its rename
            for stale in out.parent.iterdir():
                if is_atomic_temp(stale.name, out.name):
                    stale.unlink(missing_ok=True)

    def open(self, mode: str = "w"):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_open(self.path, mode)


def output_dir(
    out: str | Path | OutputDir | None,
    kind: str,
    *,
    overwrite: bool = False,
    legacy_files: Sequence[str] = ("results.json",),
    **kw,
) -> OutputDir | None:
    """An `OutputDir` for a library function's `out_dir` argument: None stays None, an OutputDir a
    command already checked (with its inputs) is used as it is, a path is checked now."""
    if out is None or isinstance(out, OutputDir):
        return out
    return OutputDir(out, kind, overwrite=overwrite, legacy_files=legacy_files, **kw)


# ==== "finished" markers (helper block of issue 25; kept apart from the output-folder policy above) ====
#
# Every "this is finished" file in polyret goes through these two functions: a checkpoint's completion
# marker, an embedding store's progress.json and a shard's marker, run.json of a training run, an
# experiment's per-run and per-suite markers. A marker is JSON written atomically and *last*, after
# everything it vouches for; `{"complete": false, ...}` records progress, anything else that parses as a
# JSON object counts as finished (markers of older versions recorded their presence only).


def mark_finished(path: str | Path, record: Mapping[str, Any] | None = None, *, complete: bool = True) -> Path:
    """Write the marker at `path`: `record` plus `"complete": <complete>`, atomically."""
    return write_json(path, {**(record or {}), "complete": complete})


def read_progress_marker(path: str | Path) -> dict | None:
    """The marker at `path` as written (finished or not), or None when it is missing or unreadable."""
    try:
        marker = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def finished_record(path: str | Path) -> dict | None:
    """The marker at `path` when it says finished; None when it is missing, unreadable or in progress."""
    marker = read_progress_marker(path)
    return marker if marker is not None and marker.get("complete", True) is True else None
