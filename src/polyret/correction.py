"""Language-bias correction: per-language statistics of a model's embeddings, applied at index and
query time.

Why: a multilingual encoder's embeddings carry a language component. Texts of one language share a
mean offset (and a few dominant directions), so in a pool of many languages a query scores the
passages of its own language higher than better answers in other languages (language bias, the
rank distance of LAReQA). Removing that component needs no training: a handful of texts per
language gives its statistics. Methods (`METHODS`):

- `none`: embeddings unchanged.
- `center`: a passage minus its language's mean passage embedding, NOT renormalised; queries
  unchanged. For a fixed query every passage of language Y moves by the same -q.mu_Y, so every
  ranking inside one language (Mono, Cross) is unchanged by construction; only pooled rankings move.
- `center-both`: queries minus their language's mean query, passages minus their language's mean
  passage, both renormalised (moves Mono a little, helps Cross and Multi more).
- `lir`: center-both, then remove each language's top-k principal directions (LIR, arXiv
  2109.04727) before renormalising.
- `procrustes`: center-both, then an orthogonal map per language onto the pivot language (English),
  fitted on parallel text (the same sentences in both languages), renormalised.
- `rotate`: `center` plus the same orthogonal map for a language's queries and passages, not
  renormalised: inner products inside one language are those of `center`, so Mono is exactly the
  base model's, while Cross and Multi see aligned languages.

A fitted correction is stored in the model directory (`language_correction/`: `correction.json`
names the method, the model it was fitted for and the text it came from; `stats.npz` holds the
arrays), so it travels with the model. `polyret correction fit` also makes it the last module of the
directory's sentence-transformers pipeline (`polyret.correction_st`), so a plain
`SentenceTransformer(dir, trust_remote_code=True)` applies it too; polyret itself loads such a
directory without that module and applies the statistics here, as for a folder-only directory.
The language of a text comes from metadata where there is one; otherwise `infer_languages` picks
the nearest language mean (measured in the README).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from polyret.encode import encode_texts, model_id
from polyret.errors import PolyretError
from polyret.integrity import (
    DamagedFile,
    check_finite,
    checksum_file,
    verification_enabled,
)
from polyret.io import write_json

METHODS: tuple[str, ...] = ("none", "center", "center-both", "lir", "procrustes", "rotate")
CORRECTION_DIR = "language_correction"
KINDS = ("query", "passage")
MIN_TEXTS = 20  # fewer texts than this per language: too noisy a mean; the language stays uncorrected
PIVOT = "en"


@dataclass(frozen=True)
class _Recipe:
    center_queries: bool
    center_passages: bool
    directions: bool
    rotation: bool
    renormalise: bool


RECIPES: dict[str, _Recipe] = {
    "none": _Recipe(False, False, False, False, False),
    "center": _Recipe(False, True, False, False, False),
    "center-both": _Recipe(True, True, False, False, True),
    "lir": _Recipe(True, True, True, False, True),
    "procrustes": _Recipe(True, True, False, True, True),
    "rotate": _Recipe(False, True, False, True, False),
}


def check_method(method: str) -> str:
    if method not in RECIPES:
        raise PolyretError(f"unknown language correction {method!r}; choose from {', '.join(METHODS)}")
    return method


@dataclass
class LanguageCorrection:
    """Per-language statistics and the method that uses them.

    stats[lang] holds `query_mean`, `passage_mean` (d,), optionally `directions` (k, d) and
    `rotation` (d, d). `uncorrected` lists languages that had too little text (left as they are).
    """

    method: str
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    model_id: str | None = None
    source: str = ""
    n_texts: dict[str, dict[str, int]] = field(default_factory=dict)
    uncorrected: list[str] = field(default_factory=list)
    n_directions: int = 0
    pivot: str = PIVOT

    def __post_init__(self) -> None:
        check_method(self.method)

    @property
    def recipe(self) -> _Recipe:
        return RECIPES[self.method]

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.stats) | set(self.uncorrected))

    def with_method(self, method: str) -> "LanguageCorrection":
        """The same statistics used by another method (rotation methods need fitted rotations)."""
        other = LanguageCorrection(
            check_method(method),
            self.stats,
            self.model_id,
            self.source,
            self.n_texts,
            self.uncorrected,
            self.n_directions,
            self.pivot,
        )
        other._check_complete()
        return other

    def _check_complete(self) -> None:
        need = [k for k, on in (("directions", self.recipe.directions), ("rotation", self.recipe.rotation)) if on]
        for lang, st in self.stats.items():
            for key in need:
                if key not in st:
                    raise PolyretError(
                        f"language correction {self.method!r} needs '{key}' for language {lang!r}, which these "
                        f"statistics ({self.source or 'unnamed'}) do not have; fit them with method {self.method!r}"
                    )

    def apply(self, emb: np.ndarray, langs: Sequence[str] | str, kind: str, *, model_name: str = "") -> np.ndarray:
        """Corrected copy of `emb` (rows in languages `langs`, one per row or one for all)."""
        if kind not in KINDS:
            raise PolyretError(f"kind must be 'query' or 'passage', not {kind!r}")
        x = np.array(emb, dtype=np.float32, copy=True)
        if self.method == "none" or len(x) == 0:
            return x
        langs_arr = np.full(len(x), langs, dtype=object) if isinstance(langs, str) else np.asarray(langs, dtype=object)
        if len(langs_arr) != len(x):
            raise PolyretError(f"{len(langs_arr)} language labels for {len(x)} embeddings")
        r = self.recipe
        centred = r.center_queries if kind == "query" else r.center_passages
        for lang in sorted(set(langs_arr.tolist())):
            rows = langs_arr == lang
            st = self.stats.get(lang)
            if st is None:
                if lang in self.uncorrected:
                    continue  # too little text to estimate: counted when fitted, left as it is
                where = f" of model {model_name}" if model_name else ""
                raise PolyretError(
                    f"language correction{where} ({self.source or 'unnamed statistics'}) has no statistics for "
                    f"language {lang!r}; it knows: {', '.join(self.languages) or 'none'}. Fit it on text in that "
                    "language (polyret correction fit) or use --language-correction none"
                )
            block = x[rows]
            if centred:
                block = block - st[f"{kind}_mean"]
            if r.directions:
                d = st["directions"]
                block = block - (block @ d.T) @ d
            if r.rotation:
                block = block @ st["rotation"]
            x[rows] = block
        if r.renormalise:
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x /= np.maximum(norms, 1e-12)
        return x

    def fingerprint(self) -> str:
        """A short hash of the method and every statistic (cache identities, results)."""
        import hashlib

        h = hashlib.sha1(self.method.encode())
        for lang in sorted(self.stats):
            for key in sorted(self.stats[lang]):
                h.update(f"{lang}/{key}".encode())
                h.update(np.ascontiguousarray(self.stats[lang][key], dtype=np.float32).tobytes())
        return h.hexdigest()[:12]

    # ---- storage -----------------------------------------------------------------------------
    def save(self, model_dir: str | Path) -> Path:
        """Write `<model_dir>/language_correction/` (replacing an older correction there)."""
        root = Path(model_dir) / CORRECTION_DIR
        root.mkdir(parents=True, exist_ok=True)
        arrays = {f"{lang}/{key}": val for lang, st in self.stats.items() for key, val in st.items()}
        tmp = root / "stats.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(root / "stats.npz")
        write_json(
            root / "correction.json",
            {
                "format": "polyret-language-correction/1",
                "stats_xxh3": checksum_file(root / "stats.npz"),  # verified by load (polyret.integrity)
                "method": self.method,
                "model_id": self.model_id,
                "source": self.source,
                "languages": sorted(self.stats),
                "uncorrected": self.uncorrected,
                "n_texts": self.n_texts,
                "n_directions": self.n_directions,
                "pivot": self.pivot,
            },
        )
        return root

    @classmethod
    def load(cls, model_dir: str | Path, *, model_id: str | None = None) -> "LanguageCorrection":
        """Read a stored correction; with `model_id`, refuse statistics fitted for another model."""
        root = Path(model_dir) / CORRECTION_DIR
        meta_path = root / "correction.json"
        if not meta_path.is_file():
            raise PolyretError(f"{model_dir}: no language correction stored (expected {meta_path})")
        meta, stats = _read_stored(root)
        if model_id is not None and meta.get("model_id") not in (None, model_id):
            raise PolyretError(
                f"{meta_path}: fitted for model {meta.get('model_id')}, not for this model ({model_id}); "
                "refit it for this model (polyret correction fit)"
            )
        out = cls(
            check_method(str(meta.get("method"))),
            stats,
            meta.get("model_id"),
            meta.get("source", ""),
            meta.get("n_texts", {}),
            meta.get("uncorrected", []),
            int(meta.get("n_directions", 0)),
            meta.get("pivot", PIVOT),
        )
        out._check_complete()
        return out


def _read_stored(root: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """correction.json and the statistics of `root`, checked: format, the checksum recorded when
    stats.npz was written, and each array's shape (one width d for all) and finiteness."""
    import zipfile

    meta_path, npz_path = root / "correction.json", root / "stats.npz"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DamagedFile(f"{meta_path}: unreadable language correction ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != "polyret-language-correction/1":
        shown = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise PolyretError(f"{meta_path}: not a polyret language correction (format {shown!r})")
    if not npz_path.is_file():
        raise DamagedFile(f"{npz_path} is missing (the statistics {meta_path} describes)")
    if meta.get("stats_xxh3") and verification_enabled() and checksum_file(npz_path) != meta["stats_xxh3"]:
        raise DamagedFile(
            f"{npz_path} fails its checksum: it changed since it was fitted (damaged file); "
            "refit it (polyret correction fit --overwrite)"
        )
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key], dtype=np.float32) for key in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DamagedFile(
            f"{npz_path} is damaged ({type(e).__name__}: {e}); refit it (polyret correction fit --overwrite)"
        ) from None
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in arrays.items():
        lang, _, name = key.partition("/")
        stats.setdefault(lang, {})[name] = arr
    _check_shapes(stats, npz_path)
    return meta, stats


_SHAPES = {"query_mean": lambda d: (d,), "passage_mean": lambda d: (d,), "rotation": lambda d: (d, d)}


def _check_shapes(stats: dict[str, dict[str, np.ndarray]], where: Path) -> None:
    dims = {st["passage_mean"].shape[-1] for st in stats.values() if "passage_mean" in st}
    if len(dims) > 1:
        raise DamagedFile(f"{where}: the languages' statistics have different widths {sorted(dims)} (damaged file)")
    d = dims.pop() if dims else None
    for lang, st in stats.items():
        for name, arr in st.items():
            expected = _SHAPES[name](d) if name in _SHAPES else None
            if (expected is not None and arr.shape != expected) or (
                name == "directions" and (arr.ndim != 2 or arr.shape[1] != d)
            ):
                raise DamagedFile(f"{where}: {lang}/{name} has shape {arr.shape}, expected {expected or ('k', d)}")
            check_finite(arr.reshape(1, -1), f"{where}: {lang}/{name}")


def check_stored_correction(model_dir: str | Path) -> None:
    """Raise DamagedFile / PolyretError naming the file when the correction stored in `model_dir` is
    damaged (the model loader runs this first: the pipeline's correction module reads these files)."""
    root = Path(model_dir) / CORRECTION_DIR
    if root.is_dir():
        if not (root / "correction.json").is_file():
            raise DamagedFile(f"{root / 'correction.json'} is missing (the folder {root} holds statistics without it)")
        _read_stored(root)


def stored_correction(model_dir: str | Path | None) -> Path | None:
    """The model dir's correction folder if it has one."""
    if model_dir is None:
        return None
    p = Path(model_dir) / CORRECTION_DIR / "correction.json"
    return p.parent if p.is_file() else None


# ---- fitting ---------------------------------------------------------------------------------


def _top_directions(x: np.ndarray, k: int) -> np.ndarray:
    """Top-k right singular vectors of a language's (uncentred) embedding matrix, as in LIR."""
    _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    return vt[:k].astype(np.float32)


def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal W minimising ||source W - target||_F (Schönemann's solution, via SVD)."""
    u, _, vt = np.linalg.svd(source.astype(np.float64).T @ target.astype(np.float64))
    return (u @ vt).astype(np.float32)


def fit_correction(
    queries: Mapping[str, np.ndarray],
    passages: Mapping[str, np.ndarray],
    method: str = "center",
    *,
    parallel: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    n_directions: int = 1,
    min_texts: int = MIN_TEXTS,
    model_id: str | None = None,
    source: str = "",
    pivot: str = PIVOT,
) -> LanguageCorrection:
    """Statistics from embeddings grouped by language.

    queries / passages: lang -> (n, d) embeddings of texts in that language encoded as that kind.
    parallel: lang -> (X, P), row i of X (language lang) and of P (the pivot language) embedding the
    same sentence; needed by `procrustes` and `rotate` (languages without it get no rotation: an error
    if one is asked for). A language with fewer than `min_texts` texts of a kind is left uncorrected,
    with one warning naming the languages and counts.
    """
    recipe = RECIPES[check_method(method)]
    langs = sorted(set(queries) | set(passages))
    stats: dict[str, dict[str, np.ndarray]] = {}
    counts: dict[str, dict[str, int]] = {}
    short: dict[str, dict[str, int]] = {}
    for lang in langs:
        q = np.asarray(queries.get(lang, np.zeros((0, 0))), dtype=np.float32)
        p = np.asarray(passages.get(lang, np.zeros((0, 0))), dtype=np.float32)
        counts[lang] = {"query": len(q), "passage": len(p)}
        needed = [
            k
            for k, on in (("query", recipe.center_queries), ("passage", recipe.center_passages or recipe.rotation))
            if on
        ]
        if method != "none" and any(counts[lang][k] < min_texts for k in needed):
            short[lang] = counts[lang]
            continue
        st: dict[str, np.ndarray] = {}
        if len(q):
            st["query_mean"] = q.mean(0)
        if len(p):
            st["passage_mean"] = p.mean(0)
        st.setdefault("query_mean", st.get("passage_mean"))
        st.setdefault("passage_mean", st.get("query_mean"))
        if recipe.directions:
            both = np.concatenate([a for a in (q, p) if len(a)])
            st["directions"] = _top_directions(both, n_directions)
        stats[lang] = st
    if recipe.rotation:
        parallel = parallel or {}
        for lang, st in stats.items():
            if lang == pivot:
                st["rotation"] = np.eye(len(st["passage_mean"]), dtype=np.float32)
                continue
            if lang not in parallel:
                raise PolyretError(
                    f"language correction {method!r} needs parallel text between {lang!r} and the pivot "
                    f"{pivot!r}; none was given for {lang!r}"
                )
            xs, ps = parallel[lang]
            if pivot not in stats:
                raise PolyretError(f"language correction {method!r}: no statistics for the pivot language {pivot!r}")
            # Centre each side with its own language's mean so the map aligns shapes, not offsets.
            st["rotation"] = procrustes(xs - st["passage_mean"], ps - stats[pivot]["passage_mean"])
    if short:
        shown = ", ".join(f"{l} ({c['query']} queries, {c['passage']} passages)" for l, c in sorted(short.items()))
        warnings.warn(
            f"language correction: {len(short)} language(s) with fewer than {min_texts} texts left "
            f"uncorrected: {shown}",
            stacklevel=2,
        )
    return LanguageCorrection(
        method, stats, model_id, source, counts, sorted(short), n_directions if recipe.directions else 0, pivot
    )


def infer_languages(emb: np.ndarray, correction: LanguageCorrection, kind: str) -> list[str]:
    """Each row's language as the nearest language mean (squared Euclidean) of `kind`.

    A language-identification model is not needed: the language component this module removes is
    exactly what identifies the language (accuracy measured in the README)."""
    langs = sorted(correction.stats)
    if not langs:
        raise PolyretError("language inference needs a correction with statistics for at least one language")
    means = np.stack([correction.stats[l][f"{kind}_mean"] for l in langs])
    x = np.asarray(emb, dtype=np.float32)
    score = x @ means.T - 0.5 * (means * means).sum(1)[None, :]
    return [langs[i] for i in score.argmax(1)]


# ---- choosing the correction for an evaluation -------------------------------------------------

AUTO = "auto"
CHOICES: tuple[str, ...] = (AUTO, *METHODS)
# Methods that can be fitted on an unlabelled pool (its texts and their languages); the rotation
# methods need parallel text, so they come only from stored statistics.
POOL_METHODS = ("center", "center-both", "lir")


def resolve_correction(
    spec,
    model=None,
    *,
    queries: Mapping[str, np.ndarray] | None = None,
    passages: Mapping[str, np.ndarray] | None = None,
    model_name: str = "",
) -> tuple[LanguageCorrection | None, dict]:
    """The correction an evaluation applies, and how it was chosen (for results.json).

    spec: None / 'none'; a `LanguageCorrection`; a directory holding `language_correction/`;
    'auto' (the model's stored correction if its directory has one, else none); or a method name
    (the stored statistics under that method, else fitted on the evaluated texts: `queries` /
    `passages` map language -> embeddings).

    Why 'auto' never fits on the pool: a pool's per-language means mix language with content
    wherever languages cover different documents. On the held-out training groups (MLQA paragraphs
    in 4 languages, XNLI sentences in 15) pool-fitted center-both cut Multi mAP .720 -> .598, while
    statistics fitted on parallel text (`polyret correction fit`) hold only language.
    """
    if spec is None or spec == "none":
        return None, {"method": "none"}
    if isinstance(spec, LanguageCorrection):
        return spec, _describe(spec, "given")
    if isinstance(spec, Path) or (
        isinstance(spec, str) and spec not in CHOICES and ("/" in spec or Path(spec).is_dir())
    ):
        corr = LanguageCorrection.load(spec, model_id=model_id(model) if model is not None else None)
        return corr, _describe(corr, f"stored in {spec}")
    if spec not in CHOICES:
        raise PolyretError(f"unknown --language-correction {spec!r}; choose from {', '.join(CHOICES)} or a model dir")
    mid = model_id(model) if model is not None else None
    stored_dir = stored_correction(getattr(model, "polyret_source_dir", None)) if model is not None else None
    if stored_dir is not None:
        corr = LanguageCorrection.load(stored_dir.parent, model_id=mid)
        if spec not in (AUTO, corr.method):
            corr = corr.with_method(spec)
        return corr, _describe(corr, f"stored with the model ({stored_dir})")
    if spec == AUTO:
        return None, {"method": "none", "statistics": "auto: the model has no stored correction"}
    if spec not in POOL_METHODS:
        raise PolyretError(
            f"language correction {spec!r} needs statistics fitted on parallel text, and model "
            f"{model_name or mid} has none stored; run `polyret correction fit` for it first"
        )
    if queries is None or passages is None:
        raise PolyretError(f"language correction {spec!r}: no stored statistics and no texts to fit them on")
    corr = fit_correction(queries, passages, spec, model_id=mid, source="the evaluated texts (pool statistics)")
    return corr, _describe(corr, "fitted on the evaluated texts")


def _describe(corr: LanguageCorrection, how: str) -> dict:
    return {
        "method": corr.method,
        "statistics": how,
        "source": corr.source,
        "languages": sorted(corr.stats),
        "uncorrected": corr.uncorrected,
    }


def group_by_language(emb: np.ndarray, langs: Sequence[str]) -> dict[str, np.ndarray]:
    arr = np.asarray(langs, dtype=object)
    return {l: emb[arr == l] for l in sorted(set(arr.tolist()))}


# ---- fitting for a model from text ------------------------------------------------------------


def fit_model_correction(
    model,
    method: str,
    *,
    groups: Sequence | None = None,
    texts: Mapping[str, Sequence[str]] | None = None,
    pivot: str = PIVOT,
    n_directions: int = 1,
    min_texts: int = MIN_TEXTS,
    source: str = "",
    show_progress: bool = True,
    cache: bool = True,
) -> LanguageCorrection:
    """Encode text and fit a correction for `model`.

    groups: parallel groups (`.queries` / `.positives`: language -> text); every text is encoded as
    a query and as a passage, and rows of one group are translations (what `procrustes` / `rotate`
    need). texts: language -> plain texts (means and directions only). Both may be given.
    """
    check_method(method)
    per_lang: dict[str, list[str]] = {}
    for g in groups or []:
        for lang in sorted(set(g.queries) | set(g.positives)):
            for text in (g.queries.get(lang), g.positives.get(lang)):
                if text:
                    per_lang.setdefault(lang, []).append(text)
    for lang, items in (texts or {}).items():
        per_lang.setdefault(lang, []).extend(items)
    if not per_lang:
        raise PolyretError("language correction: no text to fit on")
    Q: dict[str, np.ndarray] = {}
    P: dict[str, np.ndarray] = {}
    for lang, items in sorted(per_lang.items()):
        Q[lang] = encode_texts(model, items, "query", show_progress=show_progress, cache=cache)
        P[lang] = encode_texts(model, items, "passage", show_progress=show_progress, cache=cache)
    parallel = None
    if RECIPES[method].rotation:
        if pivot not in per_lang:
            raise PolyretError(
                f"language correction {method!r} maps every language onto {pivot!r}: give text in {pivot!r} too"
            )
        parallel = {}
        for lang in per_lang:
            rows_l, rows_p = _parallel_rows(groups or [], lang, pivot)
            if rows_l:
                both_l = np.concatenate([P[lang][rows_l], Q[lang][rows_l]])
                both_p = np.concatenate([P[pivot][rows_p], Q[pivot][rows_p]])
                parallel[lang] = (both_l, both_p)
    return fit_correction(
        Q,
        P,
        method,
        parallel=parallel,
        n_directions=n_directions,
        min_texts=min_texts,
        model_id=model_id(model),
        source=source,
        pivot=pivot,
    )


def _parallel_rows(groups: Sequence, lang: str, pivot: str) -> tuple[list[int], list[int]]:
    """Row positions (in the per-language text lists built by `fit_model_correction`) of texts of
    `lang` and their translations in `pivot`, for groups that have both."""

    def positions(language: str) -> dict[tuple[int, str], int]:
        pos, n = {}, 0
        for gi, g in enumerate(groups):
            for role, text in (("q", g.queries.get(language)), ("p", g.positives.get(language))):
                if text:
                    pos[(gi, role)] = n
                    n += 1
        return pos

    a, b = positions(lang), positions(pivot)
    common = [k for k in a if k in b]
    return [a[k] for k in common], [b[k] for k in common]


def streaming_correction(spec, model, *, model_name: str = "") -> tuple[LanguageCorrection | None, dict]:
    """The correction for a streamed corpus (BEIR, MIRACL, encode): statistics cannot come from a
    pool that is never held whole, so only stored ones apply ('auto' without them is 'none')."""
    if spec == AUTO and model is None:
        return None, {"method": "none", "statistics": "auto: no model to read a stored correction from"}
    return resolve_correction(spec, model, model_name=model_name)
