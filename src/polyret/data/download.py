"""Fetch the public evaluation data (XQuAD-R, MLQA-R, XNLI 1.0, MLQA v1) and check what is present.

Files land in the same layout as the shared data directory (`lareqa/xquad-r/LL.json`, ...), so
every loader finds them through the data-directory setting. Downloads resume partial files with
HTTP Range requests, skip complete ones, and verify sha256 where a checksum is known: from the
manifest below, or from a `SHA256SUMS` file in the destination. Where no checksum is published
(the two zips), the first complete download's sha256 is recorded in `DEST/SHA256SUMS` and later
runs verify against it.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path

from polyret.errors import PolyretError
from polyret.io import read_text, write_text

LAREQA_MASTER = "https://raw.githubusercontent.com/google-research-datasets/lareqa/master"
LAREQA_MLQA_R = (
    "https://raw.githubusercontent.com/google-research-datasets/lareqa/354d67d1cd066854cdfbf5ad0e6105528976141d"
)
XQUAD_R_LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
MLQA_R_LANGS = ["ar", "de", "en", "es", "hi", "vi", "zh"]
# sha256 of the upstream files (lareqa master), as published verbatim in the shared data copy.
XQUAD_R_SHA256 = {
    "ar": "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d",
    "de": "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949",
    "el": "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6",
    "en": "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe",
    "es": "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de",
    "hi": "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872",
    "ru": "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1",
    "th": "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4",
    "tr": "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94",
    "vi": "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995",
    "zh": "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed",
}
XNLI_LANGS = ["ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"]


@dataclass(frozen=True)
class RemoteFile:
    dataset: str
    rel_path: str  # path under the data directory (and under a --mirror base URL)
    url: str
    sha256: str | None = None


def manifest() -> list[RemoteFile]:
    files = [
        RemoteFile("xquad-r", f"lareqa/xquad-r/{l}.json", f"{LAREQA_MASTER}/xquad-r/{l}.json", XQUAD_R_SHA256[l])
        for l in XQUAD_R_LANGS
    ]
    files += [RemoteFile("mlqa-r", f"lareqa/mlqa-r/{l}.json", f"{LAREQA_MLQA_R}/mlqa-r/{l}.json") for l in MLQA_R_LANGS]
    files.append(RemoteFile("xnli", "xnli/XNLI-1.0.zip", "https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip"))
    files.append(RemoteFile("mlqa", "mlqa/MLQA_V1.zip", "https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip"))
    return files


DATASETS = sorted({f.dataset for f in manifest()})


def read_sha256sums(path: Path) -> dict[str, str]:
    """`SHA256SUMS` (sha256sum format: '<hex>  <relative path>') -> {relative path: hex}."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out

    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise PolyretError(f"{path}:{lineno}: not a sha256sum line")
        out[parts[1].lstrip("*").lstrip("./").strip()] = parts[0].lower()
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, dest: Path, progress=None) -> None:
    """Download url -> dest, resuming `dest.part` with a Range request when it exists."""
    import urllib.error  # here: urllib.request loads http.client, ssl and email (`data status` needs none)
    import urllib.request

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to fetch: the part file is already complete
            part.rename(dest)
            return
        raise PolyretError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        if url.startswith("file:"):
            raise PolyretError(f"{url}: not in the mirror ({getattr(e, 'reason', e)})") from None
        raise PolyretError(f"{url}: cannot download ({getattr(e, 'reason', e)}); no network? try --mirror") from None
    with resp:
        if have and resp.status != 206:  # server ignored Range: start over
            have = 0
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total else None
        if progress is not None:
            progress(dest.name, have, total)
        with part.open("ab" if have else "wb") as f:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                f.write(chunk)
                have += len(chunk)
                if progress is not None:
                    progress(dest.name, have, total)
    if total is not None and have < total:
        raise PolyretError(f"{url}: connection closed after {have} of {total} bytes; run again to resume")
    part.rename(dest)


def _extract(rf: RemoteFile, path: Path, dest_root: Path) -> None:
    """Unpack the zips into the layouts the loaders read."""
    if rf.dataset == "xnli":
        _xnli_zip_to_tsv(path, dest_root / "xnli")
    elif rf.dataset == "mlqa":
        with zipfile.ZipFile(path) as z:
            z.extractall(dest_root / "mlqa")


def _xnli_zip_to_tsv(zip_path: Path, out_dir: Path) -> None:
    """XNLI-1.0.zip's `xnli.{dev,test}.tsv` (all languages, with header) -> `{split}-LL.tsv` files
    with `premise<TAB>hypothesis<TAB>label`, the layout of XTREME's copy that `eval xnli` reads."""
    import csv

    with zipfile.ZipFile(zip_path) as z:
        for split in ("dev", "test"):
            name = next((n for n in z.namelist() if n.endswith(f"xnli.{split}.tsv")), None)
            if name is None:
                raise PolyretError(f"{zip_path}: has no xnli.{split}.tsv")
            rows: dict[str, list[tuple[str, str, str]]] = {}
            with z.open(name) as raw:
                reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE)
                for i, r in enumerate(reader, 2):
                    try:
                        rows.setdefault(r["language"], []).append((r["sentence1"], r["sentence2"], r["gold_label"]))
                    except KeyError as e:
                        raise PolyretError(f"{zip_path}:{name}:{i}: missing column {e}") from None
            for lang, items in rows.items():
                with (out_dir / f"{split}-{lang}.tsv").open("w", encoding="utf-8", newline="") as f:
                    for p, h, label in items:
                        f.write(f"{p}\t{h}\t{label}\n")


def mirror_base(mirror: str | None) -> str | None:
    """A `--mirror` as the base URL the files are fetched from: an http(s):// or file:// URL, or a
    local folder (as its file:// URL). Anything else, or a folder that is not there, is one PolyretError."""
    if not mirror:
        return None
    if mirror.startswith(("http://", "https://")):
        return mirror.rstrip("/")
    if mirror.startswith("file://"):
        parsed = urllib.parse.urlparse(mirror)
        if parsed.netloc not in ("", "localhost"):
            raise PolyretError(
                f"--mirror {mirror}: a file:// URL must name a local folder (file:///path), not host {parsed.netloc!r}"
            )
        folder = Path(urllib.parse.unquote(parsed.path))
    elif "://" in mirror:
        raise PolyretError(
            f"--mirror {mirror}: unsupported URL scheme; give an http(s):// or file:// URL, or a local folder"
        )
    else:
        folder = Path(mirror).expanduser()
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise PolyretError(f"--mirror {mirror}: {folder} {why}")
    return folder.resolve().as_uri()


def check_download_target(dest: str | Path, mirror: str | None = None) -> None:
    """Refuse, before anything is fetched or made, a destination that cannot be a folder (a regular
    file, or a path through one) and a mirror that cannot work (`mirror_base`)."""
    dest = Path(dest)
    for p in (dest, *dest.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == dest else f"cannot be made: {p} is a file"
                raise PolyretError(f"{dest}: {what}, not a folder; give a folder to download into")
            break
    mirror_base(mirror)


def download(
    dest: str | Path,
    *,
    datasets: list[str] | None = None,
    mirror: str | None = None,
    progress=None,
) -> list[dict]:
    """Fetch the chosen data sets into `dest`; returns one status dict per file."""
    dest = Path(dest)
    check_download_target(dest, mirror)
    base = mirror_base(mirror)
    wanted = set(datasets or DATASETS)
    unknown = wanted - set(DATASETS)
    if unknown:
        raise PolyretError(f"unknown data set(s) {sorted(unknown)}; choose from {DATASETS}")
    sums_path = dest / "SHA256SUMS"
    known = read_sha256sums(sums_path)
    report = []
    for rf in manifest():
        if rf.dataset not in wanted:
            continue
        path = dest / rf.rel_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PolyretError(f"{path.parent}: cannot make the folder ({e.strerror})") from None
        expected = rf.sha256 or known.get(rf.rel_path)
        status = "present"
        if path.exists() and expected and sha256_file(path) != expected:
            path.rename(path.with_name(path.name + ".bad"))  # keep it for inspection, fetch again
        if not path.exists():
            url = f"{base}/{rf.rel_path}" if base else rf.url
            _fetch(url, path, progress)
            status = "downloaded"
        digest = sha256_file(path)
        if expected and digest != expected:
            bad = path.with_name(path.name + ".bad")
            path.rename(bad)
            raise PolyretError(f"{bad}: sha256 {digest} does not match the expected {expected}")
        if not expected:
            known[rf.rel_path] = digest
            with sums_path.open("a", encoding="utf-8") as f:
                f.write(f"{digest}  {rf.rel_path}\n")
        # Unpacked when the archive is new, or when an earlier run was killed while unpacking (the
        # marker is written only after a complete extraction).
        extracted = path.with_name(path.name + ".extracted")
        if rf.dataset in ("xnli", "mlqa") and (status == "downloaded" or not extracted.exists()):
            _extract(rf, path, dest)
            write_text(extracted, digest + "\n")  # atomic: a killed run never leaves a half marker
        report.append(
            {"dataset": rf.dataset, "file": rf.rel_path, "status": status, "sha256": digest, "verified": bool(expected)}
        )
    return report


# Data sets the shared directory may hold, by the path that proves they are there.
STATUS_PROBES = {
    "xquad-r": "lareqa/xquad-r",
    "mlqa-r": "lareqa/mlqa-r",
    "mlqa-test": "mlqa-test",
    "xnli": "xnli",
    "nli-en": "nli-en",
    "tatoeba": "tatoeba",
    "tydiqa-goldp": "tydiqa-goldp",
    "miracl": "miracl",
}


def data_status(root: str | Path, *, verify: bool = True) -> dict:
    """Which data sets are present under `root`, and whether their files match SHA256SUMS."""
    root = Path(root)
    sums = read_sha256sums(root / "SHA256SUMS")
    out: dict = {"root": str(root), "datasets": {}}
    for name, rel in STATUS_PROBES.items():
        d = root / rel
        files = sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else []
        entry = {"present": bool(files), "files": len(files), "checked": 0, "mismatched": [], "unlisted": 0}
        for p in files:
            key = p.relative_to(root).as_posix()
            if key not in sums:
                entry["unlisted"] += 1
            elif verify:
                entry["checked"] += 1
                if sha256_file(p) != sums[key]:
                    entry["mismatched"].append(key)
        out["datasets"][name] = entry
    return out


def default_download_dest() -> Path:
    return Path(os.environ.get("POLYRET_DATA") or "data")
