"""The language correction as a sentence-transformers module (the last step of the pipeline).

This file is self-contained on purpose: `polyret correction fit` copies it into the model directory
as `polyret_correction.py`, and `modules.json` names the class `polyret_correction.LanguageCorrectionModule`,
so a model directory loads without polyret installed:

    SentenceTransformer(dir, trust_remote_code=True)   # sentence-transformers >= 6.0 asks for the flag
                                                         # for any module class outside its own package

It needs only numpy, torch and sentence-transformers (tested: 6.3.0). It reads the statistics that
polyret stores in `language_correction/` (`correction.json` + `stats.npz`), the same folder older
polyret versions wrote, and applies them exactly as `polyret.correction.LanguageCorrection.apply`:

- `encode_query` (task "query") uses the query statistics, `encode_document` (task "document") and
  plain `encode` the passage statistics; `encode(..., task="query")` chooses the query side too.
- `encode(..., language="de")` gives the texts' language (one for the whole call: sentence-transformers
  sorts the texts by length before batching, so a per-text list could not be lined up with the
  rows a module sees). Without it each row's language is its nearest language mean (squared
  Euclidean), as `polyret.correction.infer_languages` does.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.modules.module import Module

FORMAT = "polyret-language-correction/1"
# method -> (centre queries, centre passages, remove directions, rotate, renormalise); mirrors
# polyret.correction.RECIPES (a test checks they agree).
RECIPES: dict[str, tuple[bool, bool, bool, bool, bool]] = {
    "none": (False, False, False, False, False),
    "center": (False, True, False, False, False),
    "center-both": (True, True, False, False, True),
    "lir": (True, True, True, False, True),
    "procrustes": (True, True, False, True, True),
    "rotate": (False, True, False, True, False),
}
QUERY_TASKS = ("query",)


def read_correction_dir(path: str) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """(correction.json as a dict, lang -> name -> array) from a `language_correction/` folder."""
    meta_path = os.path.join(path, "correction.json")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a polyret language correction (format {meta.get('format')!r})")
    if meta.get("method") not in RECIPES:
        raise ValueError(f"{meta_path}: unknown method {meta.get('method')!r}")
    stats: dict[str, dict[str, np.ndarray]] = {}
    with np.load(os.path.join(path, "stats.npz")) as npz:
        for key in npz.files:
            lang, name = key.split("/", 1)
            stats.setdefault(lang, {})[name] = np.asarray(npz[key], dtype=np.float32)
    return meta, stats


class LanguageCorrectionModule(Module):
    """Per-language correction of `sentence_embedding` (see the module docstring)."""

    forward_kwargs = {"task", "language"}

    def __init__(self, meta: dict, stats: dict[str, dict[str, np.ndarray]]):
        super().__init__()
        self.meta = dict(meta)
        self.method = meta["method"]
        self.recipe = RECIPES[self.method]
        self.stats = stats
        self.uncorrected = list(meta.get("uncorrected", []))
        self.languages = sorted(stats)
        self._on_device: dict[str, dict[str, dict[str, torch.Tensor]]] = {}

    def _stats_on(self, device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = {
                l: {k: torch.from_numpy(v).to(device) for k, v in st.items()} for l, st in self.stats.items()
            }
        return self._on_device[key]

    def infer(self, x: torch.Tensor, kind: str) -> list[str]:
        """Each row's language: the nearest `kind` mean among the corrected languages."""
        if not self.languages:
            raise ValueError("this language correction has no statistics to infer a language from")
        st = self._stats_on(x.device)
        means = torch.stack([st[l][f"{kind}_mean"] for l in self.languages]).to(x.dtype)
        score = x @ means.T - 0.5 * (means * means).sum(1)[None, :]
        return [self.languages[i] for i in score.argmax(1).tolist()]

    def correct(self, x: torch.Tensor, langs: list[str], kind: str) -> torch.Tensor:
        """Corrected copy of `x` (float32 rows, one language per row)."""
        centre_q, centre_p, directions, rotation, renormalise = self.recipe
        centred = centre_q if kind == "query" else centre_p
        st_all = self._stats_on(x.device)
        out = x.clone()
        for lang in sorted(set(langs)):
            rows = torch.tensor([l == lang for l in langs], device=x.device)
            st = st_all.get(lang)
            if st is None:
                if lang in self.uncorrected:
                    continue  # too little text when fitted: left as it is, as polyret does
                raise ValueError(
                    f"language correction has no statistics for language {lang!r}; it knows: "
                    f"{', '.join(sorted(set(self.languages) | set(self.uncorrected)))}"
                )
            block = out[rows]
            if centred:
                block = block - st[f"{kind}_mean"]
            if directions:
                d = st["directions"]
                block = block - (block @ d.T) @ d
            if rotation:
                block = block @ st["rotation"]
            out[rows] = block
        if renormalise:
            out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return out

    def forward(self, features: dict[str, Any], task: str | None = None, language: str | None = None, **kwargs):
        x = features.get("sentence_embedding")
        if x is None or self.method == "none" or len(x) == 0:
            return features
        if language is not None and not isinstance(language, str):
            raise ValueError(
                "language= takes one language code for the whole call (texts are re-ordered by "
                "length inside encode, so a per-text list cannot be matched to its rows)"
            )
        kind = "query" if task in QUERY_TASKS else "passage"
        # polyret L2-normalises every embedding before correcting it; so does this module, which makes
        # it exact whether or not a Normalize module runs before it.
        xf = torch.nn.functional.normalize(x.float(), dim=-1)
        langs = [language] * len(xf) if language else self.infer(xf, kind)
        features["sentence_embedding"] = self.correct(xf, langs, kind).to(x.dtype)
        return features

    def get_config_dict(self) -> dict[str, Any]:
        return {}

    def save(self, output_path: str, *args, **kwargs) -> None:
        """Write `correction.json` + `stats.npz`, the folder layout polyret reads."""
        os.makedirs(output_path, exist_ok=True)
        arrays = {f"{lang}/{key}": val for lang, st in self.stats.items() for key, val in st.items()}
        np.savez(os.path.join(output_path, "stats.npz"), **arrays)
        with open(os.path.join(output_path, "correction.json"), "w", encoding="utf-8") as f:
            json.dump(self.meta, f, indent=2)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token=None,
        cache_folder=None,
        revision=None,
        local_files_only: bool = False,
        **kwargs,
    ) -> "LanguageCorrectionModule":
        path = cls.load_dir_path(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        meta, stats = read_correction_dir(path)
        return cls(meta, stats)
