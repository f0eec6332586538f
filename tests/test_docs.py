"""The manual and the README: the strict MkDocs build passes (so a broken link, anchor or API reference
fails the suite and CI), the README stays a front page, and guide pages describe what is (history lives
in CHANGELOG.md and the results pages)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 200
# Words that belong to the project's history, not to a page that says how polyret works now. "v1" as a
# recipe name; a data set's version ("MLQA v1.0", "miracl-corpus-v1.0") is not history.
HISTORY_WORDS = re.compile(r"\bv1\b(?!\.\d)|earlier protocol|previous recipe", re.IGNORECASE)
HISTORY_PAGES = {"history.md"}  # plus everything under docs/results/


def mkdocs_build(config: Path, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_manual_builds_strict_with_the_api_reference(tmp_path):
    done = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site", ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    # mkdocstrings resolved the modules in src/ (statically) and rendered their members.
    for name in (
        "polyret.evaluate.lareqa_eval.evaluate_lareqa",
        "polyret.evaluate.xnli.evaluate_xnli",
        "polyret.correction.fit_model_correction",
        "polyret.train.train",
        "polyret.experiment.runner.run_experiment",
        "polyret.search",
        "polyret.metrics",
        "polyret.model.load_model",
        "polyret.encode.encode_texts",
    ):
        assert f'id="{name}"' in api, name
    # the changelog is part of the manual (history page), through the snippet include
    history = (tmp_path / "site" / "history" / "index.html").read_text(encoding="utf-8")
    assert "quick-v1.yaml" in history


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The property `make docs` relies on: a link to a page that does not exist fails the build."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n", encoding="utf-8")
    config = tmp_path / "mkdocs.yml"
    config.write_text("site_name: t\ndocs_dir: docs\n", encoding="utf-8")
    done = mkdocs_build(config, tmp_path / "site", tmp_path)
    assert done.returncode != 0
    assert "missing.md" in done.stderr


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    text = "\n".join(lines)
    # The two commands, exactly as .ci/run and a new user call them.
    assert "make demo" in text and "make test" in text


def github_slug(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_readme_links_point_at_existing_pages_and_headings():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert len(local) >= 20  # the headline table alone links each figure
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.MULTILINE)
            assert anchor in {github_slug(h) for h in headings}, f"README links to {link}: no such heading"


def test_guide_pages_describe_what_is():
    offenders = []
    for page in sorted(DOCS.rglob("*.md")):
        rel = page.relative_to(DOCS)
        if rel.parts[0] == "results" or rel.name in HISTORY_PAGES:
            continue
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if HISTORY_WORDS.search(line):
                offenders.append(f"docs/{rel}:{number}: {line.strip()[:80]}")
    assert not offenders, "history words on guide pages (move them to CHANGELOG.md):\n" + "\n".join(offenders)


def test_history_word_rule_matches_what_it_should():
    # the rule itself, on known strings (independent of the pages)
    assert HISTORY_WORDS.search("the v1 recipe")
    assert HISTORY_WORDS.search("`quick-v1.yaml`")
    assert HISTORY_WORDS.search("under the Earlier Protocol")
    assert HISTORY_WORDS.search("the previous recipe (MLQA only)")
    assert not HISTORY_WORDS.search("MLQA v1.0 and miracl-corpus-v1.0-sw.jsonl.gz")
