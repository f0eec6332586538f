"""Issue 24: one vocabulary. Walks every command's parameters, so a new command cannot drift: the same
option name has one help text (the one in cli/options.py for the shared options), old spellings are
not visible, every command that encodes takes the shared encoding options, and the old spellings
still work with a one-line deprecation warning."""

from __future__ import annotations

import collections

import pytest
import typer.main

from polyret.cli import app, main, options
from polyret.cli.options import ENCODING_OPTIONS, rewrite_old_spellings

OLD_SPELLINGS = {"--dest", "--into", "--force", "--kind", "--xquad-r"}
# option -> its help text in cli/options.py: one definition, one text
SHARED = {
    "--model": options.MODEL_HELP,
    "--data": options.DATA_HELP,
    "--out": options.OUT_HELP,
    "--overwrite": options.OVERWRITE_HELP,
    "--device": options.DEVICE_OPTION_HELP,
    "--batch-size": options.BATCH_SIZE_HELP,
    "--cache": options.CACHE_HELP,
    "--langs": options.LANGS_HELP,
    "--language-correction": options.LANGUAGE_CORRECTION_HELP,
    "--prompt": options.PROMPT_HELP,
    "--progress": options.PROGRESS_HELP,
}
# Commands that encode text, and the shared encoding options each may lack, with the reason.
ENCODING_COMMANDS = {
    "encode": set(),
    "encode-corpus": set(),
    "eval lareqa": set(),
    "eval xnli": set(),
    "eval tatoeba": set(),
    "eval beir": set(),
    # evaluate_miracl streams the corpus into the store in --out and takes no embedding cache
    "eval miracl": {"--cache"},
    # it fits the correction (--method); its encoding batch is the library's
    "correction fit": {"--language-correction", "--batch-size"},
    "bias": set(),
}


def _commands() -> dict[str, object]:
    found = {}

    def walk(cmd, path):
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click: no isinstance)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()


def _options(cmd) -> dict[str, object]:
    """long option name -> parameter (the help option left out)."""
    return {
        next(o for o in p.opts if o.startswith("--")): p
        for p in cmd.params
        if p.param_type_name == "option" and p.name != "help"
    }


def test_the_walk_sees_every_command():
    assert len(COMMANDS) >= 22
    assert {"encode", "data download", "eval xnli", "eval tatoeba", "correction fit", "model prepare"} <= set(COMMANDS)


def test_one_option_name_has_one_help_text():
    helps = collections.defaultdict(set)
    for name, cmd in COMMANDS.items():
        for opt, p in _options(cmd).items():
            assert p.help, f"{name} {opt} has no help text"
            helps[opt].add(p.help)
    drift = {opt: sorted(texts) for opt, texts in helps.items() if len(texts) > 1}
    assert not drift, f"options with several help texts (define them once in cli/options.py): {drift}"
    for opt, text in SHARED.items():
        assert helps[opt] == {text}, opt


def test_no_old_spelling_is_visible():
    for name, cmd in COMMANDS.items():
        spelled = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        assert not spelled & OLD_SPELLINGS, f"{name} still declares {spelled & OLD_SPELLINGS}"


def test_every_old_spelling_maps_to_an_option_of_its_command():
    renamed = {name: getattr(cmd, "renamed", {}) for name, cmd in COMMANDS.items()}
    assert set().union(*renamed.values()) == OLD_SPELLINGS
    for name, mapping in renamed.items():
        for old, new in mapping.items():
            assert new in _options(COMMANDS[name]), f"{name}: {old} -> {new}, which it does not take"


def test_every_encoding_command_takes_the_shared_encoding_options():
    for name, exempt in ENCODING_COMMANDS.items():
        missing = set(ENCODING_OPTIONS) - set(_options(COMMANDS[name])) - exempt
        assert not missing, f"{name} encodes but lacks {sorted(missing)}"
    # a command with --device runs a model: it is either listed above or trains/runs a config
    with_device = {name for name, cmd in COMMANDS.items() if "--device" in _options(cmd)}
    assert with_device - set(ENCODING_COMMANDS) == {"train", "experiment", "demo"}


def test_rewrite_old_spellings(capsys):
    mapping = {"--dest": "--out", "--kind": "--prompt"}
    got = rewrite_old_spellings(["--dest", "d", "--kind=query", "--only", "x", "--", "--dest"], mapping, "polyret x")
    assert got == ["--out", "d", "--prompt=query", "--only", "x", "--", "--dest"]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: polyret x --dest is deprecated; use --out",
        "warning: polyret x --kind is deprecated; use --prompt",
    ]


@pytest.mark.parametrize(
    "command, old, new",
    [
        (["data", "download", "--only", "nosuch"], "--dest", "--out"),
        (["model", "prepare"], "--force", "--overwrite"),
    ],
)
def test_old_spellings_still_work_with_one_warning(command, old, new, tmp_path, capsys, monkeypatch):
    """The old spelling reaches the new option: `--dest FILE` is refused as `--out FILE` is."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    args = [*command, old] if old == "--force" else [*command, old, str(a_file)]
    if old == "--force":  # model prepare --force --out FILE: the --out check answers before any conversion
        args += ["--out", str(a_file)]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("deprecated") == 1 and f"{old} is deprecated; use {new}" in err
    assert str(a_file) in " ".join(err.split()) and "Traceback" not in err
    assert a_file.read_text() == "x"


def test_help_shows_the_new_names_only(capsys):
    for command, old, new in (
        (["data", "download"], "--dest", "--out"),
        (["correction", "fit"], "--into", "--out"),
        (["encode"], "--kind", "--prompt"),
    ):
        main([*command, "--help"])  # exit 0: main returns
        out = capsys.readouterr().out
        assert new in out and old not in out, command


def test_constants_spelled_out_for_a_cheap_start_match_the_library():
    """cli/ repeats two library constants so that --help need not import numpy or pydantic."""
    from polyret.cli.train_cmd import STRATEGY_HELP
    from polyret.config import STRATEGIES
    from polyret.encode import ENCODE_BATCH_SIZE

    assert options.ENCODE_BATCH_SIZE == ENCODE_BATCH_SIZE
    assert STRATEGY_HELP == f"Batch strategy: {' | '.join(STRATEGIES)}."
