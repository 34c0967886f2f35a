"""precision=bf16 and compile=true run every experiment (debug=fast) and their rows say so; compiled models of
every family compute what eager ones do (fp32, 1e-5); benchmarks/gpu_check.py runs on a CPU with --smoke.

One case per family runs in the default suite; the rest are `slow` (compilation takes tens of seconds on CPU)."""

import json
from pathlib import Path

import pytest
import torch

from experiments.run import run_job
from experiments.runtime import Runtime
from tests.helpers import ROOT, compose

pytestmark = pytest.mark.usefixtures("one_thread")

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
# Extra shrinking for the default-suite OFA case (the slow cases run plain debug=fast).
OFA_TINY = ["model.stage_widths=[8,12]", "model.stage_strides=[1,2]", "model.stage_se=[false,true]",
            "model.head_channels=16", "model.stem_channels=8", "method.predictor_samples=12",
            "method.predictor_epochs=5", "method.search.population=8", "method.search.generations=2",
            "method.latency_repeats=2", "method.latency_batch=4"]
DEFAULT_SUITE = {("lth_mnist1d", "bf16"), ("moe_clustered", "bf16"), ("af_needle", "bf16"), ("ofa_mnist1d", "bf16"),
                 ("lth_mnist1d", "compile")}
ARMS = {"bf16": ["precision=bf16"], "compile": ["compile=true"]}


def _cases():
    for name in EXPERIMENTS:
        for arm in ARMS:
            marks = [] if (name, arm) in DEFAULT_SUITE else [pytest.mark.slow]
            yield pytest.param(name, arm, marks=marks, id=f"{name}-{arm}")


def _on_miniature(name: str, tmp_path: Path) -> list[str]:
    """The paper-scale experiments read real files: point them at the miniatures tests/test_paper_configs.py
    writes in the official layouts, with its CPU-sized shrinking."""
    from tests import paper_miniatures as mini
    from tests.test_paper_configs import PAPERS

    if name in PAPERS:
        return [*PAPERS[name].write(tmp_path / "data"), *PAPERS[name].shrink]
    return mini.cifar10_batches(tmp_path / "data") if name == "lth_resnet20_cifar10" else []


def _run(tmp_path: Path, name: str, extra: list[str]) -> list[dict]:
    from experiments.errors import InputError

    overrides = [f"experiment={name}", "debug=fast", "progress=false", *_on_miniature(name, tmp_path), *extra]
    try:
        return run_job(compose(overrides), tmp_path / "job")
    except InputError as e:  # an experiment reading real data files this machine lacks
        pytest.skip(f"{name}: {e}")


@pytest.mark.parametrize("name, arm", list(_cases()))
def test_every_experiment_runs_in_bf16_and_compiled(tmp_path, name, arm):
    # the default-suite OFA case, and OFA compiled (each static baseline compiles anew: ~7 min at full debug size),
    # run with the OFA-task tests' smaller supernet and only the scratch-corner baselines
    tiny = OFA_TINY if (name, arm) == ("ofa_mnist1d", "bf16") else []
    if name.startswith("ofa") and arm == "compile":
        # (ofa_imagenet: no baselines; its static models at ImageNet shapes take ~7 min to compile on 2 cores)
        tiny = [*OFA_TINY, "method.baselines=[scratch_corners]"] if name != "ofa_imagenet" else ["method.baselines=[]"]
    rows = _run(tmp_path, name, [*ARMS[arm], *tiny])
    assert rows and all(r["runtime/device"] == "cpu" and r["runtime/gpu_name"] is None for r in rows)
    assert {r["runtime/precision"] for r in rows} == {"bf16" if arm == "bf16" else "fp32"}
    compiled = {r["runtime/compile"] for r in rows}
    if arm == "bf16":
        assert compiled == {"none"}
    elif name.startswith("ofa"):  # only static models compile; the elastic supernet's row says why not
        kinds = {r["ofa/kind"]: r["runtime/compile"] for r in rows}
        assert kinds.pop("supernet") == "none (elastic supernet: compiled per sub-net would recompile)"
        assert kinds.pop("scratch_corner", "StaticSubnet") == "StaticSubnet"
        assert set(kinds.values()) <= {"none"}, kinds
    elif name.startswith("af"):
        assert compiled == {"none (adaptive frames: per-video routing)"}
    else:
        assert compiled == {"model"}
    losses = [v for r in rows for k, v in r.items() if k.startswith(("loss/", "acc/", "mse/", "map/")) and v is not None]
    assert losses and all(v == v for v in losses)  # finite metrics, no NaN from half precision


# ------------------------------------------------------------------------------- compiled == eager, per family
def _lth():
    from lth import build_model

    return build_model("mlp", 40, 10, hidden=[32, 32]), torch.randn(8, 40)


def _lth_conv():
    from lth import build_model

    return build_model("resnet20", 3 * 8 * 8, 10, image_size=8, width=4), torch.randn(4, 3, 8, 8)


def _moe():
    from sparse_moe import MoEConfig
    from sparse_moe.models import CharTransformerConfig, build_model

    cfg = CharTransformerConfig(vocab_size=32, block_size=8, n_layer=2, n_head=2, d_model=16, d_ff=32,
                                moe=MoEConfig(num_experts=4, top_k=2, router="gshard"))
    return build_model("char_transformer", cfg), torch.randint(0, 32, (2, 8))


def _af():
    from adaptive_frames import build_backbone

    return build_backbone("mobilenet_v2", 3, 5, width_mult=0.25), torch.randn(2, 3, 32, 32)


def _ofa():
    from once_for_all import ArchSpace, OFASupernet, export_subnet
    from tests.once_for_all.ofa_testutils import SPEC_2D

    net = OFASupernet(SPEC_2D)
    cfg = ArchSpace.full(SPEC_2D).smallest()
    return export_subnet(net, cfg), torch.randn(2, 3, cfg.resolution, cfg.resolution)


FAMILY_MODELS = {"lth": _lth, "lth_conv": _lth_conv, "moe": _moe, "adaptive_frames": _af, "once_for_all": _ofa}


@pytest.mark.parametrize("family", [pytest.param(f, marks=[] if f == "lth" else [pytest.mark.slow])
                                    for f in FAMILY_MODELS])
def test_compiled_models_compute_what_eager_ones_do(family):
    torch.manual_seed(0)
    model, x = FAMILY_MODELS[family]()
    model.eval()
    with torch.no_grad():
        eager = model(x)
        compiled, what = Runtime(compile=True).prepare_model(model)
        got = compiled(x)
    assert what == type(model).__name__ and compiled is not model
    eager, got = (eager[0], got[0]) if isinstance(eager, tuple) else (eager, got)  # MoE models: (out, auxes)
    torch.testing.assert_close(got, eager, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- the GPU check, on a CPU
@pytest.mark.parametrize("arms", [pytest.param("bf16"), pytest.param("fp32,bf16,compile", marks=pytest.mark.slow)])
def test_gpu_check_smoke_runs_every_family_on_cpu(tmp_path, arms):
    import benchmarks.gpu_check as gpu_check

    out = tmp_path / "check.json"
    report = gpu_check.main(["--smoke", "--device", "cpu", "--arms", arms, "--out", str(out), "--budget-s", "1e9"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    assert report["info"]["device"] == "cpu" and report["info"]["smoke"] is True
    assert set(report["families"]) == set(gpu_check.FAMILIES)
    for name, entry in report["families"].items():
        for arm in arms.split(","):
            result = entry[arm]
            if "not_applicable" in result:  # the adaptive-frames policy is not compiled, and says why
                assert (name, arm) == ("arnet", "compile")
                continue
            assert "error" not in result, (name, arm, result.get("traceback"))
            assert result["task"]["samples_per_s"] > 0 and result["bare"]["samples_per_s"] > 0
            assert result["ratio_task_over_bare"] == pytest.approx(
                result["task"]["samples_per_s"] / result["bare"]["samples_per_s"])
            assert "joules_per_step" not in result["task"]  # no NVML here: no energy claimed


# ------------------------------------------------------------------------------- MoE dispatch under autocast
def _dispatchers():
    from sparse_moe import DISPATCHERS

    return [n for n in DISPATCHERS.names() if n != "auto"]


@pytest.mark.parametrize("dispatch", _dispatchers())
def test_every_moe_dispatch_trains_under_bf16_autocast(dispatch):
    """Hand-written Functions and index_add combines follow autocast: outputs in bf16 close to fp32, fp32 grads."""
    from sparse_moe import MoEConfig, MoELayer

    torch.manual_seed(0)
    layer = MoELayer.from_config(16, 32, MoEConfig(num_experts=4, top_k=2, router="gshard", dispatch=dispatch))
    x = torch.randn(2, 8, 16)
    ref, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x)
    out.float().sum().backward()
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.isfinite().all()
               for p in layer.experts.parameters())


# ------------------------------------------------------------------------------- library loops: fp16 + scaler
def test_ofa_train_phase_in_fp16_steps_through_a_grad_scaler_and_reports_fp32_losses():
    from once_for_all.schedule import Phase
    from once_for_all.supernet import OFASupernet
    from once_for_all.training import Batches, train_phase
    from tests.once_for_all.ofa_testutils import SPEC_1D, inputs

    torch.manual_seed(0)
    net = OFASupernet(SPEC_1D)
    x, y = inputs(SPEC_1D, 16, batch=32).float(), torch.randint(0, SPEC_1D.num_classes, (32,))
    scaler, contexts = torch.amp.GradScaler("cpu"), []

    def autocast():
        contexts.append(1)
        return torch.autocast("cpu", dtype=torch.float16)

    before = {k: v.clone() for k, v in net.state_dict().items()}
    run = train_phase(net, Phase("kernel", 1, 0.05, kernel_sizes="all"), Batches(x, y, 8), device="cpu",
                      autocast=autocast, scaler=scaler)
    assert run["counters"]["optimizer_steps"] == 4 and len(contexts) == 4  # one autocast region per sub-net pass
    assert scaler.state_dict()["_growth_tracker"] > 0 or scaler.get_scale() < 65536.0  # the scaler stepped
    assert all(isinstance(h["loss"], float) and h["loss"] == h["loss"] for h in run["history"])
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())  # and the weights moved
    assert all(v.dtype == before[k].dtype for k, v in net.state_dict().items())  # fp32 master weights


def test_af_fit_epochs_in_fp16_steps_through_a_grad_scaler():
    from adaptive_frames.stages import Compute, fit_epochs

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(2 * 3 * 4 * 4, 5))
    clips, labels = torch.randn(8, 2, 3, 4, 4), torch.randint(0, 5, (8,))
    loader = [(clips[i:i + 4], labels[i:i + 4], torch.arange(i, i + 4)) for i in (0, 4)]
    scaler = torch.amp.GradScaler("cpu")
    hist = fit_epochs(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), 2,
                      compute=Compute("cpu", lambda: torch.autocast("cpu", dtype=torch.float16), scaler))
    assert len(hist) == 2 and all(h["loss"] == h["loss"] for h in hist)
    assert scaler.state_dict()["_growth_tracker"] == 4 or scaler.get_scale() < 65536.0
    assert model[1].weight.dtype == torch.float32


def _scaler() -> torch.amp.GradScaler:
    """A CPU GradScaler whose scale moves every step (growth_interval 1), so a lost state would show."""
    return torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=1)


def _fp16():
    return torch.autocast("cpu", dtype=torch.float16)


def test_ofa_fp16_loss_scale_is_in_the_epoch_state_and_resumes():
    """Killed after epoch 1 of 3 and resumed with a fresh GradScaler: the loss scale and the weights end as an
    uninterrupted fp16 run's (the scale doubled each step; a fresh one would restart at 2^8)."""
    from once_for_all.schedule import Phase
    from once_for_all.supernet import OFASupernet
    from once_for_all.training import Batches, train_phase
    from tests.once_for_all.ofa_testutils import SPEC_1D, inputs

    x, y = inputs(SPEC_1D, 16, batch=16).float(), torch.randint(0, SPEC_1D.num_classes, (16,))
    phase = Phase("kernel", 3, 0.02, kernel_sizes="all")

    def run(state=None, stop_after=None):
        torch.manual_seed(0)
        net, scaler, states = OFASupernet(SPEC_1D), _scaler(), []
        try:
            train_phase(net, phase, Batches(x, y, 8), seed=1, device="cpu", autocast=_fp16, scaler=scaler,
                        state=state, on_epoch_end=lambda s: _stop_after(states, s, stop_after))
        except StopIteration:
            pass
        return net, scaler, states

    whole_net, whole_scaler, _ = run()
    _, cut_scaler, states = run(stop_after=1)
    assert states[-1]["grad_scaler"] == cut_scaler.state_dict() and cut_scaler.get_scale() != 2.0 ** 8
    resumed_net, resumed_scaler, _ = run(state=states[-1])
    assert resumed_scaler.state_dict() == whole_scaler.state_dict()
    for k, v in whole_net.state_dict().items():
        assert torch.equal(resumed_net.state_dict()[k], v), k


def _stop_after(states: list, state: dict, epochs: int | None) -> None:
    states.append(state)
    if epochs is not None and state["epoch"] == epochs:
        raise StopIteration  # a kill after the epoch-end checkpoint


def test_af_stage_runner_checkpoints_the_fp16_loss_scale_and_resumes(tmp_path):
    """StageRunner: a stage cut after epoch 1 of 3 resumes from its checkpoint with the stage's loss scale; the
    scale and the weights end as an uninterrupted run's."""
    from adaptive_frames.stages import Compute, fit_epochs
    from experiments.context import RunContext
    from experiments.loggers import NullLogger
    from experiments.tasks.af_stages import StageRunner
    from meter import Meter

    clips, labels = torch.randn(8, 2, 3, 4, 4), torch.randint(0, 5, (8,))
    loader = [(clips[i:i + 4], labels[i:i + 4], torch.arange(i, i + 4)) for i in (0, 4)]

    def run(job: str, stop_after: int | None = None):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(1), torch.nn.Linear(2 * 3 * 4 * 4, 5))
        ctx = RunContext(job_dir=tmp_path / job, meter=Meter(), logger=NullLogger(), identity={}, progress=False)
        ctx.job_dir.mkdir(exist_ok=True)
        runner, scaler = StageRunner(ctx, model), _scaler()
        compute = Compute("cpu", _fp16, scaler)

        def one_epoch(optimizer, epoch, budget):
            if epoch == stop_after:
                raise StopIteration
            return fit_epochs(model, loader, optimizer, 1, compute=compute)[-1]

        with ctx.meter:
            try:
                runner.run("finetune", 3, model.parameters(), 0.01, one_epoch, scaler=scaler)
            except StopIteration:
                pass
        return model, scaler

    whole_model, whole_scaler = run("whole")
    _, cut_scaler = run("cut", stop_after=1)
    assert cut_scaler.get_scale() != 2.0 ** 8
    resumed_model, resumed_scaler = run("cut")  # same folder: the runner resumes at epoch 1
    assert resumed_scaler.state_dict() == whole_scaler.state_dict()
    for k, v in whole_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[k], v), k


@pytest.mark.slow  # a CLI subprocess; the default suite runs the arms' smoke above
def test_gpu_check_task_arm_runs_an_experiment_through_the_cli_and_reads_its_rows(tmp_path):
    """The --tasks plumbing on a CPU (on a GPU it runs every offline experiment on the device in bf16)."""
    import benchmarks.gpu_check as gpu_check

    report = gpu_check.main(["--smoke", "--device", "cpu", "--families", "resnet20_cifar", "--arms", "fp32",
                             "--tasks", "moe_clustered", "--out", str(tmp_path / "c.json"), "--budget-s", "1e9"])
    task = report["tasks"]["moe_clustered"]
    assert task["returncode"] == 0, task.get("stderr_tail")
    assert task["rows"] >= 1 and task["devices"] == ["cpu"] and task["precision"] == ["bf16"]
    assert task["joules"] > 0 and all("estimated" in m for m in task["energy_methods"])  # no NVML here
