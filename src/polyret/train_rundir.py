"""A training run's folder: the output-folder policy for `train`, resume checks, and checkpoints that
count only once complete.

Layout (see polyret.train): config.yaml, validation_groups.jsonl, checkpoints/checkpoint-N,
train_log.jsonl, model/, merged/, run.json.
"""

from __future__ import annotations

from pathlib import Path

from polyret.config import TrainConfig, load_train_config
from polyret.errors import PolyretError
from polyret.io import OutputDir, finished_record, mark_finished
from polyret.runtime import barrier

CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
MERGED_DIR = "merged"
TRAIN_LOG = "train_log.jsonl"
RUN_JSON = "run.json"
VALIDATION_GROUPS = "validation_groups.jsonl"
CHECKPOINT_COMPLETE = "polyret-checkpoint-complete"


def check_resume_config(cfg: TrainConfig, out: Path) -> None:
    stored = out / "config.yaml"
    if not stored.is_file():
        raise PolyretError(f"--resume: {out} is not a polyret training run (no config.yaml)")
    old = load_train_config(stored, {})
    # The device is where a run executes, not what it computes: resuming elsewhere is allowed.
    diff = [k for k in TrainConfig.model_fields if k != "device" and getattr(old, k) != getattr(cfg, k)]
    if diff:
        shown = ", ".join(f"{k}: {getattr(old, k)!r} -> {getattr(cfg, k)!r}" for k in diff[:4])
        raise PolyretError(
            f"--resume: the config differs from the one {out} was started with ({shown}); "
            "a resumed run must use the same config"
        )


def finished_run(out: Path) -> dict | None:
    """run.json of a finished run in `out` (it is written last), else None."""
    run = finished_record(out / RUN_JSON)
    return run if run is not None and run.get("status") == "complete" else None


def open_run_dir(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, world: int) -> OutputDir:
    """The run dir under polyret.io's output-folder policy; returns the OutputDir (not yet entered).

    A run dir that was started but holds no complete checkpoint (e.g. the model failed to load, or it
    was killed before the first save) holds nothing worth keeping: a plain re-run starts it afresh and
    `--resume` starts from step 0. One with a complete checkpoint needs `--resume` or `--overwrite`.
    """
    if overwrite and resume:
        raise PolyretError("--resume and --overwrite contradict each other; pick one")
    if overwrite and world > 1:
        raise PolyretError(
            "--overwrite is not supported under torchrun (the processes would need one temporary "
            "folder); remove the old run yourself or choose another --out"
        )
    target = OutputDir(
        out, "train", overwrite=overwrite, reuse=resume, legacy_files=(RUN_JSON,), legacy_partial_files=("config.yaml",)
    )
    if resume:
        if target.state == "empty":
            raise PolyretError(f"--resume: {out} is not a polyret training run (it is empty or missing)")
        check_resume_config(cfg, out)
    elif target.state == "incomplete" and not overwrite:
        if last_checkpoint(out / CHECKPOINTS) is not None:
            raise PolyretError(
                f"{out} holds an interrupted training run; pass --resume to continue it, "
                "--overwrite to start again, or choose another --out"
            )
    return target


def _checkpoint_dirs(ckpt_dir: Path) -> list[Path]:
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not ckpt_dir.is_dir():
        return []
    return [
        p
        for p in ckpt_dir.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX_CHECKPOINT_DIR + "-") and p.name.split("-")[-1].isdigit()
    ]


def last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete checkpoint: one polyret marked complete after all its files were written
    (a checkpoint cut short by a kill lacks the marker and is skipped, never resumed from)."""
    steps = [
        (int(p.name.split("-")[-1]), p)
        for p in _checkpoint_dirs(ckpt_dir)
        if finished_record(p / CHECKPOINT_COMPLETE) is not None
    ]
    return str(max(steps)[1]) if steps else None


def remove_incomplete_checkpoints(ckpt_dir: Path) -> list[str]:
    """Delete checkpoint dirs without the completion marker (ours, cut short by a kill)."""
    import shutil

    removed = []
    for p in _checkpoint_dirs(ckpt_dir):
        if finished_record(p / CHECKPOINT_COMPLETE) is None:
            shutil.rmtree(p)
            removed.append(p.name)
    return removed


def clear_unstarted_run(out: Path) -> None:
    """Empty an in-place run dir that holds no complete checkpoint (nothing in it is worth keeping)."""
    import shutil

    for p in out.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def final_path(path: str | None, work: Path, out: Path) -> str | None:
    """A path inside the working folder named as it will be after an --overwrite swap."""
    if path is None or work == out:
        return path
    p = Path(path)
    return str(out / p.relative_to(work)) if p.is_relative_to(work) else path


def trainer_class():
    """SentenceTransformerTrainer whose checkpoints count only once complete.

    transformers writes `checkpoint-N` file by file and then rotates old checkpoints; a kill in
    between leaves a dir that `get_last_checkpoint` would pick and a resume would fail on (no
    trainer_state.json). Here rotation is held back until a marker file is written last, atomically,
    into the finished checkpoint; `last_checkpoint` only takes marked ones.
    """
    from sentence_transformers import SentenceTransformerTrainer
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

    class PolyretTrainer(SentenceTransformerTrainer):
        def _save_checkpoint(self, model, trial):
            limit = self.args.save_total_limit
            self.args.save_total_limit = None  # no rotation before the new checkpoint is marked complete
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.args.save_total_limit = limit
            barrier()  # every rank has written its part
            if self.args.should_save:
                run_dir = self._get_output_dir(trial=trial)
                ckpt = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
                mark_finished(ckpt / CHECKPOINT_COMPLETE, {"step": self.state.global_step})
                rotate_checkpoints(
                    output_dir=run_dir,
                    save_total_limit=limit,
                    best_model_checkpoint=self.state.best_model_checkpoint,
                    use_mtime=True,
                )

    return PolyretTrainer
