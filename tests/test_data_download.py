"""`polyret data download` against a loopback mirror (never the real network), and `data status`."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from polyret.data import download as dl
from polyret.errors import PolyretError

from conftest import need


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single-range `Range: bytes=N-` support (for resume tests)."""

    requests_seen: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        RangeHandler.requests_seen.append((self.path, self.headers.get("Range")))
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().do_GET()
        start = int(rng.split("=")[1].split("-")[0])
        data = path.read_bytes()
        if start >= len(data):
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture()
def mirror(tmp_path, shared_data):
    """A temporary mirror holding the XQuAD-R files from the shared data and a small XNLI zip."""
    root = tmp_path / "mirror"
    for lang in dl.XQUAD_R_LANGS:
        src = need(shared_data, "lareqa", "xquad-r", f"{lang}.json")
        dst = root / "lareqa" / "xquad-r" / f"{lang}.json"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    # XNLI-1.0.zip in the upstream layout (header row, one file for all languages), built from shared rows.
    buf = io.StringIO()
    buf.write(
        "language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tpromptID\tpairID\tgenre\n"
    )
    for lang in ("en", "sw"):
        rows = need(shared_data, "xnli", f"dev-{lang}.tsv").read_text(encoding="utf-8").splitlines()[:5]
        for r in rows:
            p, h, label = r.rstrip("\r").split("\t")
            buf.write(f"{lang}\t{label}\t\t\t\t\t{p}\t{h}\t1\t1\tx\n")
    (root / "xnli").mkdir(parents=True)
    with zipfile.ZipFile(root / "xnli" / "XNLI-1.0.zip", "w") as z:
        z.writestr("XNLI-1.0/xnli.dev.tsv", buf.getvalue())
        z.writestr("XNLI-1.0/xnli.test.tsv", buf.getvalue())
    handler = partial(RangeHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests_seen = []
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_skips_and_resumes(tmp_path, mirror, shared_data):
    root, url = mirror
    dest = tmp_path / "data"
    report = dl.download(dest, datasets=["xquad-r"], mirror=url)
    assert [r["status"] for r in report] == ["downloaded"] * 11
    assert all(r["verified"] for r in report)
    sums = dl.read_sha256sums(shared_data / "SHA256SUMS")
    for lang in dl.XQUAD_R_LANGS:
        rel = f"lareqa/xquad-r/{lang}.json"
        assert hashlib.sha256((dest / rel).read_bytes()).hexdigest() == sums[rel]

    # Complete files are skipped: no new requests.
    RangeHandler.requests_seen = []
    report = dl.download(dest, datasets=["xquad-r"], mirror=url)
    assert {r["status"] for r in report} == {"present"} and RangeHandler.requests_seen == []

    # A partial file resumes with a Range request for exactly the missing tail.
    full = (dest / "lareqa/xquad-r/de.json").read_bytes()
    (dest / "lareqa/xquad-r/de.json").unlink()
    (dest / "lareqa/xquad-r/de.json.part").write_bytes(full[:1000])
    RangeHandler.requests_seen = []
    dl.download(dest, datasets=["xquad-r"], mirror=url)
    assert RangeHandler.requests_seen == [("/lareqa/xquad-r/de.json", "bytes=1000-")]
    assert (dest / "lareqa/xquad-r/de.json").read_bytes() == full


def test_download_rejects_corrupt_file(tmp_path, mirror):
    root, url = mirror
    (root / "lareqa/xquad-r/en.json").write_bytes(b'{"data": []}')  # the mirror serves wrong bytes
    with pytest.raises(PolyretError, match="does not match"):
        dl.download(tmp_path / "d", datasets=["xquad-r"], mirror=url)
    assert (tmp_path / "d/lareqa/xquad-r/en.json.bad").exists()


def test_xnli_zip_becomes_per_language_tsv(tmp_path, mirror):
    root, url = mirror
    dest = tmp_path / "d"
    report = dl.download(dest, datasets=["xnli"], mirror=url)
    assert report[0]["verified"] is False  # no published checksum: recorded for next time
    assert "xnli/XNLI-1.0.zip" in dl.read_sha256sums(dest / "SHA256SUMS")
    rows = (dest / "xnli" / "dev-sw.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 5 and all(len(r.split("\t")) == 3 for r in rows)
    assert rows[0].split("\t")[2] in {"entailment", "neutral", "contradiction"}
    # Second run verifies against the recorded checksum.
    assert dl.download(dest, datasets=["xnli"], mirror=url)[0]["verified"] is True


def test_unreachable_mirror_is_clear(tmp_path):
    with pytest.raises(PolyretError, match="cannot download"):
        dl.download(tmp_path, datasets=["xquad-r"], mirror="http://127.0.0.1:9")


def test_unknown_dataset(tmp_path):
    with pytest.raises(PolyretError, match="unknown data set"):
        dl.download(tmp_path, datasets=["squad"])


def test_status_on_shared_data(shared_data):
    st = dl.data_status(shared_data, verify=True)
    xq = st["datasets"]["xquad-r"]
    assert xq["present"] and xq["files"] == 11 and xq["checked"] == 11 and xq["mismatched"] == []
    assert st["datasets"]["miracl"]["present"]


def test_status_detects_mismatch(tmp_path, shared_data):
    src = need(shared_data, "lareqa", "xquad-r", "en.json")
    (tmp_path / "lareqa/xquad-r").mkdir(parents=True)
    (tmp_path / "lareqa/xquad-r/en.json").write_bytes(src.read_bytes()[:-10])
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  lareqa/xquad-r/en.json\n")
    st = dl.data_status(tmp_path)
    assert st["datasets"]["xquad-r"]["mismatched"] == ["lareqa/xquad-r/en.json"]
    assert json.dumps(st)  # JSON-able for `data status --json`
