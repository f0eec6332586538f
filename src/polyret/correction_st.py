"""A stored correction as part of the model's sentence-transformers pipeline (polyret's side).

`install_correction_module(dir)` adds the correction to `modules.json` (after `Normalize`, reading
the statistics in `language_correction/`) and copies `polyret/correction_module.py` into the
directory as `polyret_correction.py`, so `SentenceTransformer(dir, trust_remote_code=True)` applies
it without polyret. polyret itself loads such a directory with its own copy of the class (no code
from the directory runs) and takes the module off the pipeline again: its evaluators apply the
stored statistics themselves (`--language-correction auto|none|...`), exactly as for directories
that hold only `language_correction/` (the older layout, which still loads unchanged).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from polyret.correction import CORRECTION_DIR
from polyret.errors import PolyretError

MODULE_FILE = "polyret_correction.py"
MODULE_TYPE = "polyret_correction.LanguageCorrectionModule"
SOURCE = Path(__file__).with_name("correction_module.py")


def _read_modules(model_dir: Path) -> list[dict]:
    path = model_dir / "modules.json"
    if not path.is_file():
        raise PolyretError(
            f"{model_dir}: no modules.json; the correction module needs a sentence-transformers directory"
        )
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PolyretError(f"{path}: unreadable ({e})") from None
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise PolyretError(f"{path}: not a sentence-transformers module list")
    return modules


def has_correction_module(model_dir: str | Path) -> bool:
    """True when the directory's pipeline ends with polyret's correction module."""
    path = Path(model_dir) / "modules.json"
    if not path.is_file():
        return False
    try:
        return any(m.get("type") == MODULE_TYPE for m in json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):
        return False


def install_correction_module(model_dir: str | Path) -> Path:
    """Make the correction stored in `model_dir/language_correction/` the last module of its pipeline.

    Idempotent: an earlier entry is replaced. modules.json is written whole and then renamed, so a
    crash leaves either the old or the new pipeline.
    """
    model_dir = Path(model_dir)
    if not (model_dir / CORRECTION_DIR / "correction.json").is_file():
        raise PolyretError(f"{model_dir}: no {CORRECTION_DIR}/ to install as a module; run `polyret correction fit`")
    modules = [m for m in _read_modules(model_dir) if m.get("type") != MODULE_TYPE]
    idx = len(modules)
    modules.append({"idx": idx, "name": str(idx), "path": CORRECTION_DIR, "type": MODULE_TYPE})
    shutil.copyfile(SOURCE, model_dir / MODULE_FILE)
    align_document_prompt(model_dir)
    tmp = model_dir / "modules.json.tmp"
    tmp.write_text(json.dumps(modules, indent=2), encoding="utf-8")
    tmp.replace(model_dir / "modules.json")
    return model_dir / "modules.json"


def align_document_prompt(model_dir: str | Path) -> bool:
    """Give `encode_document` the model's passage prompt; True if the config changed.

    Why: sentence-transformers 6 saves a `"document": ""` prompt beside e5's `"passage": "passage: "`,
    and `encode_document` takes "document" first, so a plain `encode_document` on polyret's e5 model
    encodes passages without their prompt (cosine ~.98 to the prompted embedding on the tiny model):
    neither what polyret indexes nor what the passage statistics were fitted on.
    """
    path = Path(model_dir) / "config_sentence_transformers.json"
    if not path.is_file():
        return False
    config = json.loads(path.read_text(encoding="utf-8"))
    prompts = config.get("prompts") or {}
    if not prompts.get("passage") or prompts.get("document"):
        return False
    prompts["document"] = prompts["passage"]
    config["prompts"] = prompts
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return True


def remove_correction_module(model_dir: str | Path) -> bool:
    """Take the module out of the pipeline (the statistics stay); True if there was one."""
    model_dir = Path(model_dir)
    if not has_correction_module(model_dir):
        return False
    modules = [m for m in _read_modules(model_dir) if m.get("type") != MODULE_TYPE]
    for i, m in enumerate(modules):
        m["idx"] = i
    tmp = model_dir / "modules.json.tmp"
    tmp.write_text(json.dumps(modules, indent=2), encoding="utf-8")
    tmp.replace(model_dir / "modules.json")
    (model_dir / MODULE_FILE).unlink(missing_ok=True)
    return True


def load_without_correction_module(path: str, **kwargs):
    """`SentenceTransformer(path, **kwargs)` for a directory whose pipeline ends with the correction
    module, built with polyret's own class and returned without that module (see the docstring)."""
    from sentence_transformers import SentenceTransformer

    from polyret.correction_module import LanguageCorrectionModule

    loader = getattr(SentenceTransformer, "_load_with_module_classes", None)
    if loader is None:
        raise PolyretError(
            f"{path}: its pipeline ends with polyret's correction module, which this sentence-transformers "
            "version cannot load from polyret's own code; use sentence-transformers >= 6.2"
        )
    model = loader(path, {MODULE_TYPE: LanguageCorrectionModule}, **kwargs)
    names = [n for n, m in model.named_children() if isinstance(m, LanguageCorrectionModule)]
    for name in names:
        del model._modules[name]
        if model.module_kwargs:
            model.module_kwargs.pop(name, None)
    return model
