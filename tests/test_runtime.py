"""The runtime layer: device resolution, precision per device, ranks, DDP backend, trainer_args."""

from __future__ import annotations

import pytest
import torch

from polyret import runtime
from polyret.errors import PolyretError


def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _fake_cuda(monkeypatch, n: int, bf16: bool = True):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(runtime, "cuda_supports_bf16", lambda device: bf16)


def test_auto_is_cpu_without_a_gpu_and_cpu_is_always_cpu(monkeypatch):
    _no_cuda(monkeypatch)
    assert runtime.resolve_device("auto") == "cpu"
    assert runtime.resolve_device(None) == "cpu"
    assert runtime.resolve_device(" CPU ") == "cpu"


def test_auto_and_cuda_pick_this_processes_gpu(monkeypatch):
    _fake_cuda(monkeypatch, 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert runtime.resolve_device("auto") == "cuda:0"
    assert runtime.resolve_device("cuda") == "cuda:0"
    assert runtime.resolve_device("cuda:3") == "cuda:3"
    monkeypatch.setenv("LOCAL_RANK", "2")  # torchrun: one GPU per process
    assert runtime.resolve_device("auto") == "cuda:2"
    monkeypatch.setenv("LOCAL_RANK", "5")
    with pytest.raises(PolyretError, match="local rank 5 but this node has only 4"):
        runtime.resolve_device("cuda")


def test_a_fixed_gpu_index_under_torchrun_must_be_this_processes_gpu(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert runtime.resolve_device("cuda:1") == "cuda:1" and runtime.resolve_device("cuda") == "cuda:1"
    # every rank would drive GPU 0 (and the trainer would move the model to cuda:1 behind its back)
    with pytest.raises(PolyretError, match="--device cuda:0 under torchrun: each process drives its own GPU, cuda:1"):
        runtime.resolve_device("cuda:0")


def test_impossible_devices_are_one_clear_error(monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(PolyretError, match="--device cuda: no CUDA GPU available"):
        runtime.resolve_device("cuda")
    with pytest.raises(PolyretError, match="no CUDA GPU"):
        runtime.resolve_device("cuda:1")
    with pytest.raises(PolyretError, match="choose one of auto, cpu, cuda, cuda:N, mps"):
        runtime.resolve_device("gpu")
    with pytest.raises(PolyretError, match="choose one of"):
        runtime.resolve_device("cpu:1")
    _fake_cuda(monkeypatch, 2)
    with pytest.raises(PolyretError, match="there is no GPU 2; this machine has 2 \\(cuda:0 .. cuda:1\\)"):
        runtime.resolve_device("cuda:2")
    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        with pytest.raises(PolyretError, match="MPS is not available"):
            runtime.resolve_device("mps")


def test_cpu_precision_follows_the_measured_rule_and_env_override(monkeypatch):
    monkeypatch.delenv("POLYRET_BF16", raising=False)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.precision_for("cpu") == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.precision_for("cpu", "auto") == "fp32"
    monkeypatch.setenv("POLYRET_BF16", "1")
    assert runtime.precision_for("cpu") == "bf16"
    monkeypatch.setenv("POLYRET_BF16", "0")
    assert runtime.precision_for("cpu") == "fp32"
    assert runtime.precision_for("cpu", True) == "bf16" and runtime.precision_for("cpu", False) == "fp32"
    with pytest.raises(PolyretError, match="fp16 autocast is for GPUs"):
        runtime.precision_for("cpu", "fp16")


def test_encode_and_train_share_the_cpu_rule(monkeypatch):
    from polyret.encode import bf16_supported

    monkeypatch.setenv("POLYRET_BF16", "1")
    assert bf16_supported() and runtime.precision_for("cpu") == "bf16"
    monkeypatch.setenv("POLYRET_BF16", "0")
    assert not bf16_supported() and runtime.precision_for("cpu") == "fp32"


def test_gpu_precision_bf16_else_fp16(monkeypatch):
    _fake_cuda(monkeypatch, 1, bf16=True)
    assert runtime.precision_for("cuda:0") == "bf16"
    _fake_cuda(monkeypatch, 1, bf16=False)
    assert runtime.precision_for("cuda:0") == "fp16"
    assert runtime.trainer_precision_args("fp16") == {"bf16": False, "fp16": True}
    monkeypatch.setattr(runtime, "device_name", lambda d: "Tesla T4")
    with pytest.raises(PolyretError, match="Tesla T4 has no bf16 support"):
        runtime.precision_for("cuda:0", True)
    assert runtime.precision_for("mps") == "fp32"


def test_ranks_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (runtime.rank(), runtime.world_size(), runtime.local_rank()) == (3, 4, 1)
    assert not runtime.is_main_process()
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert (runtime.rank(), runtime.world_size()) == (0, 1)


def test_nccl_on_cpu_is_an_error_gloo_is_the_cpu_default():
    assert runtime.ddp_backend("cpu") == "gloo" and runtime.ddp_backend("cuda:1") == "nccl"
    assert runtime.check_ddp_backend(None, "cpu") == "gloo"
    with pytest.raises(PolyretError, match="nccl needs CUDA GPUs, but this run's device is cpu"):
        runtime.check_ddp_backend("nccl", "cpu")
    with pytest.raises(PolyretError, match="DDP backend 'tcp'"):
        runtime.check_ddp_backend("tcp", "cuda:0")


def test_trainer_args_passthrough_is_validated():
    from polyret.train_args import training_arguments, validate_trainer_args

    assert validate_trainer_args({"gradient_accumulation_steps": 4, "report_to": "tensorboard"}) == {
        "gradient_accumulation_steps": 4,
        "report_to": "tensorboard",
    }
    with pytest.raises(
        PolyretError, match="unknown key 'gradient_acumulation_steps'.*did you mean gradient_accumulation_steps"
    ):
        validate_trainer_args({"gradient_acumulation_steps": 4})
    with pytest.raises(PolyretError, match="'learning_rate' is set by polyret from 'lr'"):
        validate_trainer_args({"learning_rate": 1e-3})
    with pytest.raises(PolyretError, match="nccl needs CUDA"):
        training_arguments("cpu", "fp32", 1, {"output_dir": "/tmp/x"}, {"ddp_backend": "nccl"})
    args = training_arguments(
        "cpu",
        "fp32",
        1,
        {"output_dir": "/tmp/x", "report_to": "none"},
        {"gradient_accumulation_steps": 3, "logging_first_step": True},
    )
    assert args.gradient_accumulation_steps == 3 and args.logging_first_step and args.use_cpu
    assert str(args.device) == "cpu" and not args.bf16 and not args.fp16


def test_train_config_rejects_a_bad_trainer_arg_before_any_write(tmp_path):
    from polyret.config import config_from_dict
    from polyret.train import train

    cfg = config_from_dict({"trainer_args": {"report_too": "none"}, "data": [str(tmp_path / "none.jsonl")]})
    with pytest.raises(PolyretError, match="unknown key 'report_too'"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_nccl_in_trainer_args_on_a_cpu_run_fails_before_any_data_is_read(tmp_path, monkeypatch):
    from polyret.config import config_from_dict
    from polyret.train import train

    _no_cuda(monkeypatch)
    # the data path does not exist: reaching the data would be a different error
    cfg = config_from_dict({"data": [str(tmp_path / "none.jsonl")], "trainer_args": {"ddp_backend": "nccl"}})
    with pytest.raises(PolyretError, match="nccl needs CUDA GPUs, but this run's device is cpu"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_train_with_cuda_on_a_cpu_machine_fails_before_any_write(tmp_path, monkeypatch):
    from polyret.config import config_from_dict
    from polyret.train import train

    _no_cuda(monkeypatch)
    cfg = config_from_dict({"data": [str(tmp_path / "none.jsonl")], "device": "cuda"})
    with pytest.raises(PolyretError, match="--device cuda: no CUDA GPU"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# Every command that runs a model; each must take --device (the list + `correction fit`).
MODEL_COMMANDS = {
    "train",
    "encode",
    "encode-corpus",
    "experiment",
    "demo",
    "correction fit",
    "eval lareqa",
    "eval xnli",
    "eval tatoeba",
    "eval beir",
    "eval miracl",
}


def _commands_with_device():
    import typer

    from polyret.cli import app

    found = {}

    def walk(cmd, path):
        if hasattr(cmd, "commands"):  # a group (typer may vendor its own click: no isinstance)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        elif any("--device" in p.opts for p in cmd.params):
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return found


def test_every_model_command_takes_device_and_refuses_cuda_without_a_gpu_before_any_work(tmp_path, monkeypatch, capsys):
    from polyret.cli import main

    _no_cuda(monkeypatch)
    # `--device` sets the process-wide choice (runtime.set_device): restored after this test
    monkeypatch.setattr(runtime, "_chosen_device", None)
    commands = _commands_with_device()
    assert MODEL_COMMANDS <= set(commands), f"missing --device: {MODEL_COMMANDS - set(commands)}"
    monkeypatch.chdir(tmp_path)
    existing = tmp_path.parent / f"{tmp_path.name}-input"  # outside tmp_path, which must stay empty
    existing.mkdir()
    existing_file = tmp_path.parent / f"{tmp_path.name}-input.jsonl"
    existing_file.write_text("")

    def value(p) -> str:
        # A path that does not exist: the device error must come first. An option whose type itself
        # requires an existing path (click checks it while parsing) gets an existing, empty folder, or an
        # existing empty file where the option takes files only.
        info = getattr(getattr(p, "type_descriptor", None), "parameter_info", None)  # typer >= 0.2x: types built lazily
        kind = info if info is not None else getattr(p, "type", None)
        if not getattr(kind, "exists", False):
            return str(tmp_path / "missing")
        return str(existing_file if getattr(kind, "dir_okay", True) is False else existing)

    for name, cmd in sorted(commands.items()):
        required = [
            arg
            for p in cmd.params
            if p.required
            for arg in ((p.opts[0], value(p)) if p.opts[0].startswith("-") else (value(p),))
        ]
        with pytest.raises(SystemExit) as exit_info:
            main([*name.split(), *required, "--device", "cuda"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, f"{name}: exit {exit_info.value.code}\n{err}"
        assert "--device cuda: no CUDA GPU available" in err and "Traceback" not in err, f"{name}: {err}"
        assert not any(tmp_path.iterdir()), f"{name} wrote {list(tmp_path.iterdir())} before refusing the device"


def test_results_record_where_they_ran(tiny_model, monkeypatch):
    """results.json of an evaluation carries `runtime`: device, hardware name, precision, world size, torch."""
    from polyret.data.lareqa import LareqaDataset
    from polyret.evaluate.lareqa_eval import evaluate_lareqa
    from train_helpers import synthetic_groups

    monkeypatch.setenv("POLYRET_BF16", "0")
    pool = LareqaDataset.from_groups(synthetic_groups(6, seed=3), name="synthetic")
    got = evaluate_lareqa(tiny_model, pool, cache=False, show_progress=False)["runtime"]
    assert {k: got[k] for k in ("device", "precision", "world_size", "torch")} == {
        "device": "cpu",
        "precision": "fp32",
        "world_size": 1,
        "torch": torch.__version__,
    }
    assert got["device_name"]
