"""experiments.runtime and the trainer on it (CPU): the config keys and their machine checks, explicit device=cpu
reproducing the golden records, bf16 and fp16 (GradScaler) checkpoints resuming bit for bit."""

from types import SimpleNamespace

import pytest
import torch

from experiments.config import ConfigError, OptimCfg, validate
from experiments.runtime import Runtime, machine, resolve_device
from experiments.trainer import fit
from tests.helpers import compose, run_cli
from tests.test_training import NullLogger, _data, _meter, _pruned_model

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a GPU refuses")


def _cfg(**kw):
    return SimpleNamespace(**{"device": "cpu", "precision": "fp32", "compile": False, "compile_mode": "default",
                              "channels_last": False, **kw})


def test_defaults_resolve_to_cpu_fp32_eager_here():
    rt = Runtime.from_config(validate(compose(["progress=false"])))
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert (str(rt.device), rt.precision, rt.compile, rt.channels_last) == (expected, "fp32", False, False)
    assert rt.row() == {"runtime/device": expected, "runtime/gpu_name": rt.row()["runtime/gpu_name"],
                        "runtime/precision": "fp32", "runtime/compile": "none"}


@pytest.mark.parametrize("key, value, allowed", [("device", "tpu", "auto, cpu, cuda, cuda:N, mps"),
                                                 ("device", "cuda:x", "cuda:N"),
                                                 ("precision", "fp8", "fp32, bf16, fp16"),
                                                 ("compile_mode", "fast", "max-autotune")])
def test_bad_runtime_keys_are_refused_at_compose_time(key, value, allowed):
    with pytest.raises(ConfigError, match=f"{key}='{value}' is invalid; allowed: .*{allowed}"):
        validate(compose([f"{key}={value}"]))


@NO_GPU
@pytest.mark.parametrize("kw, key", [({"device": "cuda"}, "device"), ({"device": "cuda:1"}, "device"),
                                     ({"precision": "fp16"}, "precision")])
def test_gpu_only_options_without_a_gpu_name_the_key_and_the_machine(kw, key):
    with pytest.raises(ConfigError, match=f"^{key}=.*this machine has no CUDA"):
        Runtime.from_config(_cfg(**kw))


@NO_GPU
def test_device_auto_falls_back_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_device("auto") == torch.device("cpu") and "CPU only" in machine()


@NO_GPU
def test_cli_device_cuda_on_a_cpu_machine_is_a_config_error_exit_2(tmp_path):
    proc = run_cli(["device=cuda", "debug=fast", "progress=false", f"hydra.run.dir={tmp_path / 'job'}"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("config error: device='cuda' is invalid") and "CPU only" in last
    assert not any((tmp_path / "job" / name).exists() for name in ("config.yaml", "summary.json", "run.json"))


def test_explicit_device_cpu_reproduces_the_golden_records(tmp_path):
    from tests.lth.test_lth_golden import OLD_DEBUG_FAST, _check, _run

    _check(_run(tmp_path, [*OLD_DEBUG_FAST, "device=cpu"]), "lth_debug_fast")


def test_device_does_not_enter_the_config_hash():
    from experiments.config import config_hash

    assert config_hash(compose(["device=cpu"])) == config_hash(compose([])) != config_hash(compose(["precision=bf16"]))


def test_to_device_and_prepare_model_are_the_identity_on_cpu_fp32():
    rt, x = Runtime(), torch.randn(2, 3, 4, 4)
    model = torch.nn.Conv2d(3, 2, 3)
    assert rt.to_device((x, [x], {"k": x}))[0] is x and rt.prepare_model(model) == (model, "none")
    nhwc = Runtime(channels_last=True)
    assert nhwc.to_device(x).is_contiguous(memory_format=torch.channels_last)
    nhwc.prepare_model(model)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)


def _interrupted_then_resumed(tmp_path, runtime: Runtime):
    """(uninterrupted model, its last checkpoint, resumed model, the resumed run's last checkpoint)."""
    optim = OptimCfg(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=20, epochs=4, eval_every=4)
    kw = dict(seed=3, total_steps=32, progress=False, runtime=runtime)
    reference, mask = _pruned_model()
    with _meter() as meter:
        fit(reference, _data(), optim, mask=mask, meter=meter, logger=NullLogger(), tag="ref",
            checkpoint_path=tmp_path / "ref.pt", **kw)

    class Crash(Exception):
        pass

    class CrashingLogger(NullLogger):
        def log(self, row, step=None):
            if step == 20:  # mid-epoch 3: the checkpoint at step 16 is the last one written
                raise Crash

    interrupted, mask = _pruned_model()
    with _meter() as meter, pytest.raises(Crash):
        fit(interrupted, _data(), optim, mask=mask, meter=meter, logger=CrashingLogger(), tag="a",
            checkpoint_path=tmp_path / "run.pt", **kw)
    resumed, _ = _pruned_model(seed=99)  # different init: everything must come from the checkpoint
    with _meter() as meter:
        fit(resumed, _data(), optim, mask=mask, meter=meter, logger=NullLogger(), tag="b",
            checkpoint_path=tmp_path / "run.pt", **kw)
    load = lambda p: torch.load(p, weights_only=True)  # noqa: E731
    return reference, load(tmp_path / "ref.pt"), resumed, load(tmp_path / "run.pt")


def test_a_bf16_checkpoint_resumes_bit_identical(tmp_path):
    reference, _, resumed, _ = _interrupted_then_resumed(tmp_path, Runtime(precision="bf16"))
    fp32, _ = _pruned_model()
    with _meter() as meter:
        fit(fp32, _data(), OptimCfg(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=20, epochs=4),
            seed=3, total_steps=32, meter=meter, logger=NullLogger(), progress=False, mask=_pruned_model()[1])
    assert not torch.equal(fp32.state_dict()["net.0.weight"], reference.state_dict()["net.0.weight"])  # ran bf16
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert a.dtype == torch.float32 and torch.equal(a, b), name  # weights stay fp32 under autocast


def test_fp16_grad_scaler_state_survives_a_kill_and_resume(tmp_path):
    """fp16 is refused on a CPU from config; the library Runtime still runs it (CPU autocast + a CPU GradScaler),
    which exercises the same trainer path a GPU run takes."""
    reference, ref_ckpt, resumed, run_ckpt = _interrupted_then_resumed(tmp_path, Runtime(precision="fp16"))
    scaler = ref_ckpt["grad_scaler"]
    assert scaler["_growth_tracker"] > 0 or scaler["scale"] < 65536.0  # it stepped: the state is not the initial
    assert run_ckpt["grad_scaler"] == scaler
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_fp32_checkpoints_hold_no_scaler_and_the_model_returns_home(tmp_path):
    _, ckpt, resumed, _ = _interrupted_then_resumed(tmp_path, Runtime())
    assert "grad_scaler" not in ckpt and next(resumed.parameters()).device.type == "cpu"
