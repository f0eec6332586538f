"""NLI readers: XNLI-format TSV, SNLI line-aligned files and SICK.

Every reader returns an `NLIPairs` (columnar: premises, hypotheses, integer labels in `NLI_LABELS`
order) and rejects malformed input with a `PolyretError` naming the file and the 1-based line:
unknown labels, blank lines, rows with too few fields. CRLF line ends and a UTF-8 byte-order mark
are accepted (the shared XNLI copy uses CRLF).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyret.errors import PolyretError
from polyret.io import read_text
from polyret.paths import find_data_dir

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(NLI_LABELS)}

# The 15 XNLI 1.0 languages, in the order of the XNLI paper's tables.
XNLI_LANGS: tuple[str, ...] = (
    "en",
    "fr",
    "es",
    "de",
    "el",
    "bg",
    "ru",
    "tr",
    "ar",
    "vi",
    "th",
    "zh",
    "hi",
    "sw",
    "ur",
)


@dataclass
class NLIPairs:
    """Premise/hypothesis pairs with labels as indices into `NLI_LABELS`."""

    premises: list[str]
    hypotheses: list[str]
    labels: np.ndarray
    source: str = ""
    parts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if not (len(self.premises) == len(self.hypotheses) == len(self.labels)):
            raise ValueError("premises, hypotheses and labels must have the same length")
        if not self.parts and self.source:
            self.parts = [self.source]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "NLIPairs":
        """The first `n` pairs (all when n is None)."""
        if n is None or n >= len(self):
            return self
        return NLIPairs(self.premises[:n], self.hypotheses[:n], self.labels[:n], f"{self.source}[:{n}]")

    def take(self, rows) -> "NLIPairs":
        """The pairs at row indices `rows` (all when None)."""
        if rows is None:
            return self
        return NLIPairs(
            [self.premises[i] for i in rows],
            [self.hypotheses[i] for i in rows],
            self.labels[rows],
            f"{self.source}[{len(rows)} rows]",
        )

    def label_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(NLI_LABELS))
        return {name: int(c) for name, c in zip(NLI_LABELS, counts)}

    @staticmethod
    def concat(items: list["NLIPairs"]) -> "NLIPairs":
        if not items:
            raise ValueError("nothing to concatenate")
        return NLIPairs(
            [p for it in items for p in it.premises],
            [h for it in items for h in it.hypotheses],
            np.concatenate([it.labels for it in items]),
            source="+".join(it.source for it in items),
            parts=[p for it in items for p in it.parts],
        )


def read_text_lines(path: Path) -> list[str]:
    """Lines without their line ends ('\\n' or '\\r\\n'); a final line end is optional."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _label(raw: str, path: Path, lineno: int) -> int:
    name = raw.strip().lower()
    if name not in LABEL_INDEX:
        raise PolyretError(f"{path}, line {lineno}: label {raw.strip()!r} is not one of {', '.join(NLI_LABELS)}")
    return LABEL_INDEX[name]


def read_xnli_tsv(path: str | Path, *, limit: int | None = None) -> NLIPairs:
    """Read `premise<TAB>hypothesis<TAB>label` rows (no header), e.g. XTREME's `dev-de.tsv`.

    Labels are matched case-insensitively. `limit` reads only the first rows (for quick runs).
    """
    path = Path(path)
    premises: list[str] = []
    hypotheses: list[str] = []
    labels: list[int] = []
    lines = read_text_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if limit is not None and len(labels) >= limit:
            break
        if not line.strip():
            raise PolyretError(f"{path}, line {lineno}: blank line (expected premise<TAB>hypothesis<TAB>label)")
        cells = line.split("\t")
        if len(cells) != 3:
            raise PolyretError(
                f"{path}, line {lineno}: expected 3 tab-separated fields (premise, hypothesis, label), got {len(cells)}"
            )
        premise, hypothesis, raw_label = cells
        if not premise.strip() or not hypothesis.strip():
            raise PolyretError(f"{path}, line {lineno}: empty premise or hypothesis")
        labels.append(_label(raw_label, path, lineno))
        premises.append(premise.strip())
        hypotheses.append(hypothesis.strip())
    if not labels:
        raise PolyretError(f"{path} holds no rows")
    return NLIPairs(premises, hypotheses, np.array(labels), source=str(path))


# SNLI's text is tokenised ("packages ." / "do n't"); XNLI's is not. Re-attaching punctuation and
# clitics keeps the English training sentences closer to what the encoder sees at test time.
_DETOK = [
    (re.compile(r" +([.,!?;:%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$]) +"), r"\1"),
    (re.compile(r" +(n't|'s|'re|'ve|'ll|'d|'m)\b", re.IGNORECASE), r"\1"),
    (re.compile(r"`` *| *''"), '"'),
]


def detokenize(text: str) -> str:
    """Undo PTB-style tokenisation enough for an encoder ("do n't go ." -> "don't go.")."""
    out = text.strip()
    for pattern, repl in _DETOK:
        out = pattern.sub(repl, out)
    return out


def read_snli_aligned(directory: str | Path, split: str, *, detok: bool = True) -> NLIPairs:
    """Read e-SNLI's line-aligned `s1.<split>`, `s2.<split>`, `labels.<split>` files."""
    directory = Path(directory)
    files = {name: directory / f"{name}.{split}" for name in ("s1", "s2", "labels")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise PolyretError(f"SNLI split {split!r}: missing {', '.join(missing)}")
    s1, s2, lab = (read_text_lines(files[n]) for n in ("s1", "s2", "labels"))
    if not (len(s1) == len(s2) == len(lab)):
        raise PolyretError(
            f"SNLI split {split!r} in {directory}: files are not line-aligned "
            f"(s1 {len(s1)}, s2 {len(s2)}, labels {len(lab)} lines)"
        )
    labels = []
    for i, (a, b, raw) in enumerate(zip(s1, s2, lab), start=1):
        for name, text in (("s1", a), ("s2", b)):
            if not text.strip():
                raise PolyretError(f"{files[name]}, line {i}: blank line")
        if not raw.strip():
            raise PolyretError(f"{files['labels']}, line {i}: blank line")
        labels.append(_label(raw, files["labels"], i))
    clean = detokenize if detok else str.strip
    if not labels:
        raise PolyretError(f"SNLI split {split!r} in {directory} holds no rows")
    return NLIPairs([clean(a) for a in s1], [clean(b) for b in s2], np.array(labels), source=f"snli:{split}")


SICK_SETS = ("TRAIN", "TRIAL", "TEST")
_SICK_COLUMNS = ("sentence_A", "sentence_B", "entailment_label", "SemEval_set")


def read_sick(path: str | Path, sets: tuple[str, ...] | list[str] = ("TRAIN",)) -> NLIPairs:
    """Read SICK.txt (TSV with header; labels ENTAILMENT/NEUTRAL/CONTRADICTION), keeping `sets`."""
    path = Path(path)
    wanted = [s.upper() for s in sets]
    bad = [s for s in wanted if s not in SICK_SETS]
    if bad:
        raise PolyretError(f"SICK set(s) {', '.join(bad)} unknown; choose from {', '.join(SICK_SETS)}")
    lines = read_text_lines(path)
    if not lines:
        raise PolyretError(f"{path} is empty (expected a SICK header row)")
    header = lines[0].split("\t")
    missing = [c for c in _SICK_COLUMNS if c not in header]
    if missing:
        raise PolyretError(f"{path}, line 1: header lacks column(s) {', '.join(missing)}; is this SICK.txt?")
    col = {c: header.index(c) for c in _SICK_COLUMNS}
    need = max(col.values()) + 1
    premises, hypotheses, labels = [], [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise PolyretError(f"{path}, line {lineno}: blank line")
        cells = line.split("\t")
        if len(cells) < need:
            raise PolyretError(f"{path}, line {lineno}: expected {len(header)} tab-separated fields, got {len(cells)}")
        split = cells[col["SemEval_set"]].strip().upper()
        if split not in SICK_SETS:
            raise PolyretError(f"{path}, line {lineno}: SemEval_set {split!r} is not one of {', '.join(SICK_SETS)}")
        if split not in wanted:
            continue
        labels.append(_label(cells[col["entailment_label"]], path, lineno))
        premises.append(cells[col["sentence_A"]].strip())
        hypotheses.append(cells[col["sentence_B"]].strip())
    if not labels:
        raise PolyretError(f"{path}: no rows in set(s) {', '.join(wanted)}")
    return NLIPairs(premises, hypotheses, np.array(labels), source=f"sick:{'+'.join(wanted)}")


# The documented default English training data for the zero-shot protocol: SNLI dev (9.8k pairs,
# balanced labels, image-caption premises) plus SICK TRAIN (4.4k pairs, another domain) = 14.2k
# pairs, ~20k distinct sentences. SNLI test (another 9.8k pairs, ~13k sentences) is left out by
# default only to keep CPU encoding time down; add it with
# `--english-train snli:dev,snli:test,sick:TRAIN`.
DEFAULT_ENGLISH_TRAIN: tuple[str, ...] = ("snli:dev", "sick:TRAIN")


def load_english_train(
    specs: str | list[str] | tuple[str, ...] | None = None, *, data_dir: str | Path | None = None
) -> NLIPairs:
    """English NLI training pairs from a list of specs (or a comma-separated string).

    A spec is `snli:<split>` (line-aligned files under `<data>/nli-en/snli`), `sick:<SET>[+<SET>]`
    (`<data>/nli-en/SICK.txt`), `xnli:<side>` (the English rows of one side of XNLI dev,
    `polyret.data.parallel`: `xnli:align` is in-domain English NLI that an evaluation of the other
    side never scores), or the path of an XNLI-format TSV file. Any spec may end in `*K` (a whole
    number) to repeat its rows K times: weighting a small set against large ones. `None` means
    `DEFAULT_ENGLISH_TRAIN`. `data_dir` defaults to `polyret.paths.find_data_dir()`.
    """
    if specs is None:
        specs = list(DEFAULT_ENGLISH_TRAIN)
    elif isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    if not specs:
        raise PolyretError("no English training data given (e.g. --english-train snli:dev,sick:TRAIN or a TSV path)")

    def root() -> Path:
        if data_dir is not None:
            return Path(data_dir)

        return find_data_dir(required=True)

    parts = []
    for spec in specs:
        spec, repeat = _spec_repeat(spec)
        kind, _, arg = spec.partition(":")
        if kind.lower() == "snli" and arg:
            part = read_snli_aligned(root() / "nli-en" / "snli", arg)
        elif kind.lower() == "sick" and arg:
            part = read_sick(root() / "nli-en" / "SICK.txt", arg.split("+"))
        elif kind.lower() == "xnli" and arg:
            xnli_dir = root() / "xnli"
            rows = read_xnli_tsv(xnli_file(xnli_dir, "dev", "en")).take(xnli_side_rows(xnli_dir, arg))
            part = NLIPairs(rows.premises, rows.hypotheses, rows.labels, source=f"xnli:{arg}")
        elif Path(spec).is_file():
            part = read_xnli_tsv(spec)
        else:
            raise PolyretError(
                f"English training data {spec!r} is neither snli:<split>, sick:<SET>, xnli:<side> nor an existing TSV file"
            )
        if repeat > 1:
            many = NLIPairs.concat([part] * repeat)
            part = NLIPairs(many.premises, many.hypotheses, many.labels, source=f"{part.source}*{repeat}")
        parts.append(part)
    return NLIPairs.concat(parts)


def _spec_repeat(spec: str) -> tuple[str, int]:
    """('xnli:align', 4) for 'xnli:align*4'; (spec, 1) without a repeat."""
    body, star, count = spec.rpartition("*")
    if not star:
        return spec, 1
    if not count.strip().isdigit() or int(count) < 1 or not body.strip():
        raise PolyretError(f"English training data {spec!r}: a repeat is <spec>*K with K a whole number >= 1")
    return body.strip(), int(count)


def reads_xnli_side(specs: str | list[str] | tuple[str, ...] | None, side: str) -> bool:
    """Whether English training specs read XNLI dev's `side` (then that side must not be scored)."""
    if specs is None or isinstance(specs, NLIPairs):
        return False
    if isinstance(specs, str):
        specs = specs.split(",")
    return any(_spec_repeat(s.strip())[0].lower() == f"xnli:{side}" for s in specs if s.strip())


def xnli_file(xnli_dir: str | Path, split: str, lang: str) -> Path:
    """`<dir>/<split>-<lang>.tsv` (XTREME's naming)."""
    return Path(xnli_dir) / f"{split}-{lang}.tsv"


SIDES = ("align", "eval")  # the two halves of XNLI dev (`polyret.data.parallel` explains the split)


def xnli_premise_index(xnli_dir: str | Path, split: str = "dev") -> np.ndarray:
    """Per row of the English file: the position of its premise in order of first appearance."""
    en = read_xnli_tsv(xnli_file(xnli_dir, split, "en"))
    first: dict[str, int] = {}
    return np.array([first.setdefault(p, len(first)) for p in en.premises], dtype=np.int64)


def xnli_side_rows(xnli_dir: str | Path, side: str, split: str = "dev") -> np.ndarray:
    """Row indices (into every language's file) of one side of the split."""
    if side not in SIDES:
        raise PolyretError(f"unknown XNLI side {side!r}; use one of {', '.join(SIDES)}")
    premise = xnli_premise_index(xnli_dir, split)
    return np.flatnonzero(premise % 2 == (0 if side == "align" else 1))


def find_xnli_languages(xnli_dir: str | Path, split: str) -> list[str]:
    """Languages with a `<split>-<lang>.tsv` file, XNLI paper order first, then alphabetical."""
    xnli_dir = Path(xnli_dir)
    if not xnli_dir.is_dir():
        raise PolyretError(f"XNLI directory {xnli_dir} does not exist")
    found = {p.name[len(split) + 1 : -4] for p in xnli_dir.glob(f"{split}-*.tsv")}
    if not found:
        raise PolyretError(f"{xnli_dir} holds no {split}-<lang>.tsv files")
    return [l for l in XNLI_LANGS if l in found] + sorted(found - set(XNLI_LANGS))


def rows_to_score(rows: str, english_train, split: str) -> str:
    """Resolve rows='auto' ('eval-side' when the English training data reads XNLI dev's alignment
    side, else 'all'), and refuse to score XNLI dev rows the English data holds: an English row
    trained on would inflate English, and its translations the transfer to every language."""
    if rows not in ("auto", "all", "eval-side"):
        raise PolyretError(f"rows must be 'auto', 'all' or 'eval-side', not {rows!r}")
    if split != "dev":
        return "all" if rows == "auto" else rows
    if reads_xnli_side(english_train, "eval"):
        raise PolyretError(
            "the English training data reads XNLI dev's evaluation side (xnli:eval), which every "
            "dev evaluation scores; train on xnli:align and score the evaluation side instead"
        )
    if reads_xnli_side(english_train, "align"):
        if rows == "all":
            raise PolyretError(
                "the English training data reads XNLI dev's alignment side (xnli:align): scoring all "
                "of dev would score trained rows and their translations; use --rows eval-side (or auto)"
            )
        return "eval-side"
    return "all" if rows == "auto" else rows
