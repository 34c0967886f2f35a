"""Config schemas of the `ofa` task (once-for-all): the supernet's elastic space, the training schedule, and the
specialisation (predictor, search, targets) with its baselines.

Cross-group checks (a phase opening a kernel the model does not have) run in `check_ofa`, which the root config
calls at validation time, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from experiments.errors import InputError
from experiments.inputs import METHOD_INPUT_CHECKS
from experiments.schema import ConfigError, cross_check, schema
from experiments.schema import check as _check


@schema("model", "base_ofa")
@dataclass
class OFAModelCfg:
    """A MobileNetV3-style elastic supernet (once_for_all.SupernetSpec); 1-D for MNIST-1D, 2-D for images."""

    name: str = "ofa_supernet"
    dims: int = 1
    stem_channels: int = 16
    stage_widths: list[int] = field(default_factory=lambda: [24, 32, 48])
    stage_strides: list[int] = field(default_factory=lambda: [1, 2, 2])
    stage_se: list[bool] = field(default_factory=lambda: [False, True, True])
    kernel_sizes: list[int] = field(default_factory=lambda: [3, 5, 7])
    expand_ratios: list[float] = field(default_factory=lambda: [3.0, 4.0, 6.0])
    depths: list[int] = field(default_factory=lambda: [2, 3, 4])
    resolutions: list[int] = field(default_factory=lambda: [32, 36, 40])
    head_channels: int = 128
    stem_stride: int = 1
    first_block_channels: int = 0  # > 0: a fixed depthwise-separable block after the stem (MobileNetV3)
    feature_channels: int = 0  # > 0: a 1x1 layer after pooling, before the classifier (MobileNetV3: 1280)
    stage_acts: list[str] = field(default_factory=list)  # per stage: relu | hswish; [] = hswish everywhere
    se_reduction: int = 4
    channel_divisor: int = 1  # expanded and SE widths rounded to multiples of this (8 on ImageNet)
    dropout: float = 0.0  # before the classifier, training only (OFA-MobileNetV3: 0.1; MNIST-1D/mnist5k keep 0)

    def __post_init__(self) -> None:
        try:  # SupernetSpec validates every field; its message names the key, here as model.<key>
            self.spec(in_channels=1, num_classes=2)
        except ValueError as e:
            raise ConfigError(str(e).replace("SupernetSpec.", "model.")) from None

    def spec(self, in_channels: int, num_classes: int):
        """The once_for_all.SupernetSpec of this config for data with `in_channels` and `num_classes`."""
        from once_for_all import SupernetSpec

        return SupernetSpec(
            dims=self.dims, in_channels=in_channels, num_classes=num_classes, stem_channels=self.stem_channels,
            stage_widths=tuple(self.stage_widths), stage_strides=tuple(self.stage_strides),
            stage_se=tuple(self.stage_se), kernel_sizes=tuple(self.kernel_sizes),
            expand_ratios=tuple(float(e) for e in self.expand_ratios), depths=tuple(self.depths),
            resolutions=tuple(self.resolutions), head_channels=self.head_channels, stem_stride=self.stem_stride,
            first_block_channels=self.first_block_channels, feature_channels=self.feature_channels,
            stage_acts=tuple(self.stage_acts), se_reduction=self.se_reduction, channel_divisor=self.channel_divisor,
            dropout=self.dropout)


@dataclass
class PhaseCfg:
    """One phase of the training schedule (once_for_all.Phase). Per dimension: null = closed (largest value only),
    "all" = every value of the model's set, or a list of values."""

    name: str = "full"
    epochs: int = 1
    lr: float = 0.1
    kernel_sizes: Any = None
    expand_ratios: Any = None
    depths: Any = None
    resolutions: Any = "all"
    subnets_per_step: int = 1
    reorder_before: bool = False  # re-order channels by importance before this phase (the expand phases)
    warmup_epochs: float = 0.0  # linear lr warm-up over the phase's first epochs (fractions allowed), then cosine


@dataclass
class SearchCfg:
    """Evolutionary search (OFA's defaults; generations scaled down for CPU)."""

    population: int = 100
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    resolution_mutate_prob: float = 0.5
    generations: int = 50
    # rank by predicted mean - penalty x the predictor ensemble's std (a lower confidence bound); 0: the mean (OFA)
    uncertainty_penalty: float = 0.0

    def __post_init__(self) -> None:
        _check(self.population >= 4, "method.search.population", self.population, ">= 4")
        _check(self.uncertainty_penalty >= 0, "method.search.uncertainty_penalty", self.uncertainty_penalty, ">= 0")
        for key in ("parent_ratio", "mutation_ratio"):
            _check(0 < getattr(self, key) < 1, f"method.search.{key}", getattr(self, key), "(0, 1)")
        for key in ("mutate_prob", "resolution_mutate_prob"):
            _check(0 <= getattr(self, key) <= 1, f"method.search.{key}", getattr(self, key), "[0, 1]")
        _check(self.generations >= 1, "method.search.generations", self.generations, ">= 1")


OFA_BASELINES = ("scratch_corners", "width_multiplier")
LATENCY_TIMERS = ("auto", "wall", "thread_cpu")  # once_for_all.efficiency.TIMERS and auto
LATENCY_DEVICES = ("run", "cpu")  # where latency and energy per inference are measured: the run's device | CPU
PREDICTOR_LINKS = ("identity", "sigmoid")  # once_for_all.predictor.LINKS (not imported: compose stays light)
OFA_COSTS = ("flops", "latency_ms")  # what a target or a constraint bounds: analytic FLOPs | the batch-1 latency table


@dataclass
class ConstraintsCfg:
    """Absolute limits the search meets at every target, besides the target itself (null: unbounded)."""

    flops: float | None = None  # analytic inference FLOPs per sample
    latency_ms: float | None = None  # the batch-1 latency table's prediction on this machine

    def __post_init__(self) -> None:
        for key, limit in self.limits().items():
            _check(limit > 0, f"method.constraints.{key}", limit, "> 0 or null")

    def limits(self) -> dict[str, float]:
        return {k: float(v) for k, v in vars(self).items() if v is not None}


@schema("method", "base_ofa")
@dataclass
class OFAMethodCfg:
    """Train the supernet by `training` over `phases`, then specialise one sub-net per target (no retraining).

    The optimiser group (`optim.*`: SGD Nesterov, batch size, weight decay) serves every phase; each phase has its
    own epochs and peak lr (cosine). From-scratch baselines train `optim.epochs` at `optim.lr`."""

    name: str = "ofa"
    training: str = "progressive"  # once_for_all.SCHEDULES: progressive (`phases` as given) | no_ps | no_ps_kd | sandwich
    phases: list[PhaseCfg] = field(default_factory=lambda: [PhaseCfg()])  # the progressive-shrinking schedule
    kd_weight: float = 1.0  # soft cross-entropy against the full network (OFA) or the largest sub-net (sandwich)
    # the KD teacher: a frozen copy of the net after this phase teaches the later ones; "first" (the schedule's
    # first phase: OFA's full net), a phase name, or null (no teacher: kd_weight must then be 0, except sandwich)
    teacher: Optional[str] = "first"
    label_smoothing: float = 0.1
    bn_recal_samples: int = 2000
    bn_recal_batches: int = 10
    # streaming data (data.in_memory=false): sub-nets are evaluated on an in-memory seeded subset of at most this
    # many samples per split (val and test); null = the whole split. In-memory data always uses whole splits.
    eval_samples: Optional[int] = None
    predictor_samples: int = 200  # recalibrated sub-nets evaluated on the validation split
    predictor_holdout: float = 0.2  # of those, held out to report RMSE and Kendall tau
    predictor_epochs: int = 300
    predictor_link: str = "identity"  # once_for_all.predictor.LINKS: identity (OFA) | sigmoid (bounded to (0, 1))
    predictor_ensemble: int = 1  # members fitted from successive seeds; their std feeds search.uncertainty_penalty
    predictor_bootstrap: bool = False  # each member fits a bootstrap resample (else all agree on measured sub-nets)
    targets: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])  # fractions of the full net's cost
    target_metric: str = "flops"  # the cost a target is a fraction of: flops | latency_ms (measured on this machine)
    constraints: ConstraintsCfg = field(default_factory=ConstraintsCfg)
    search: SearchCfg = field(default_factory=SearchCfg)
    baselines: list[str] = field(default_factory=lambda: list(OFA_BASELINES))
    latency_batch: int = 64  # latency is measured at batch 1 and at this batch
    supernet_from: Optional[str] = None  # an earlier ofa job folder: specialise its trained supernet, train none
    # table and target latency: wall | thread_cpu (no waits for a busy CPU; reads ~14% low on an idle one, see
    # benchmarks/ofa_latency_table.py) | auto (thread_cpu at threads=1, else wall)
    latency_timer: str = "wall"
    latency_repeats: int = 30
    # the deployment target latency, the latency table and energy per inference describe: run (the run's device: a
    # GPU run measures the GPU, synchronised) | cpu (this host's CPU, e.g. for a net trained on a GPU, deployed on CPU)
    latency_device: str = "run"

    def __post_init__(self) -> None:
        _check(len(self.phases) >= 1, "method.phases", self.phases, "one or more phases")
        _check(len({p.name for p in self.phases}) == len(self.phases), "method.phases", [p.name for p in self.phases],
               "distinct phase names (each is a resumable unit folder)")
        _check(len(self.targets) >= 1, "method.targets", list(self.targets), "one or more FLOPs fractions in (0, 1]")
        _check(all(0 < t <= 1 for t in self.targets), "method.targets", list(self.targets), "fractions in (0, 1]")
        _check(self.kd_weight >= 0 and 0 <= self.label_smoothing < 1, "method.kd_weight/label_smoothing",
               (self.kd_weight, self.label_smoothing), "kd_weight >= 0, label_smoothing in [0, 1)")
        _check(self.bn_recal_samples >= self.bn_recal_batches >= 1, "method.bn_recal_samples/bn_recal_batches",
               (self.bn_recal_samples, self.bn_recal_batches), "samples >= batches >= 1")
        _check(self.eval_samples is None or self.eval_samples >= 1, "method.eval_samples", self.eval_samples,
               "null (whole split) or >= 1")
        _check(self.predictor_samples >= 10, "method.predictor_samples", self.predictor_samples, ">= 10")
        _check(0 < self.predictor_holdout < 1, "method.predictor_holdout", self.predictor_holdout, "(0, 1)")
        _check(self.predictor_link in PREDICTOR_LINKS, "method.predictor_link", self.predictor_link,
               ", ".join(PREDICTOR_LINKS))
        _check(self.predictor_ensemble >= 1, "method.predictor_ensemble", self.predictor_ensemble, ">= 1")
        _check(self.search.uncertainty_penalty == 0 or self.predictor_ensemble >= 2, "method.search.uncertainty_penalty",
               self.search.uncertainty_penalty, "0 with predictor_ensemble=1 (one member has no spread; set "
               "method.predictor_ensemble >= 2)")
        _check(self.target_metric in OFA_COSTS, "method.target_metric", self.target_metric, ", ".join(OFA_COSTS))
        _check(self.latency_timer in LATENCY_TIMERS, "method.latency_timer", self.latency_timer,
               ", ".join(LATENCY_TIMERS))
        _check(self.latency_device in LATENCY_DEVICES, "method.latency_device", self.latency_device,
               ", ".join(LATENCY_DEVICES))
        bad = [b for b in self.baselines if b not in OFA_BASELINES]
        _check(not bad, "method.baselines", bad, ", ".join(OFA_BASELINES))


@cross_check("ofa")
def check_ofa(cfg) -> None:
    """Every value a phase opens must be in the model's space (a kernel larger than k_max, an expand ratio not in
    the set, an unknown dimension value); runs at validation, before any work."""
    from once_for_all.schedule import SCHEDULES

    _check(cfg.method.training in SCHEDULES, "method.training", cfg.method.training, ", ".join(SCHEDULES.names()))
    _check(cfg.method.latency_timer != "thread_cpu" or cfg.threads == 1, "method.latency_timer",
           f"thread_cpu with threads={cfg.threads}", "thread_cpu only with threads=1 (or auto, or wall)")
    spec = cfg.model.spec(in_channels=1, num_classes=2)  # the fewest channels and classes: a lower bound on FLOPs
    for i, phase in enumerate(cfg.method.phases):
        try:
            to_phase(phase).space(spec)
        except ValueError as e:
            raise ConfigError(f"method.phases[{i}]: {e}") from None
    check_teacher(cfg.method)
    if cfg.method.constraints.flops is not None:  # latency is known only once measured; the search checks it then
        from once_for_all import ArchSpace
        from once_for_all.flops import FlopsTable

        cheapest = FlopsTable(spec).predict(ArchSpace.full(spec).smallest())
        _check(cfg.method.constraints.flops >= cheapest, "method.constraints.flops", cfg.method.constraints.flops,
               f">= {cheapest} (the smallest sub-net's FLOPs, at least); the constraint is infeasible")


@METHOD_INPUT_CHECKS.register("ofa")
def check_supernet_source(cfg) -> None:
    """method.supernet_from must be a finished supernet of the same space and data (else nothing to specialise)."""
    source = cfg.method.supernet_from
    if not source:
        return
    folder = Path(source)
    for needed in ("supernet/final.pt", "config.yaml"):
        if not (folder / needed).is_file():
            raise InputError(f"method.supernet_from={source!r}: {folder / needed} does not exist; give the folder of "
                             "an ofa job whose supernet unit finished")
    from omegaconf import OmegaConf

    theirs = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    ours = {"model": vars(cfg.model), "data": vars(cfg.data)}
    for group, keys in (("model", list(vars(cfg.model))), ("data", ["name"])):
        for key in keys:
            mine, other = ours[group][key], theirs.get(group, {}).get(key, ours[group][key])
            if (list(mine) if isinstance(mine, (list, tuple)) else mine) != other:
                raise ConfigError(f"method.supernet_from={source!r} holds a supernet trained with {group}.{key}="
                                  f"{other!r}, not {mine!r}; specialise it with the same {group} config")


def teacher_arg(teacher: str | None) -> int | str | None:
    """method.teacher as once_for_all.training.train_schedule's `teacher_after` ("first" -> index 0)."""
    return 0 if teacher == "first" else teacher


def check_teacher(m: OFAMethodCfg) -> None:
    """method.teacher names a phase of the schedule `method.training` builds, and kd_weight > 0 has a teacher."""
    from once_for_all.schedule import SCHEDULES
    from once_for_all.training import teacher_index

    phases = SCHEDULES.get(m.training)(ps=[to_phase(p) for p in m.phases])
    try:
        teacher_index(phases, teacher_arg(m.teacher), m.kd_weight)
    except ValueError as e:
        key = "method.teacher" if "not a phase" in str(e) else "method.kd_weight"
        raise ConfigError(f"{key}: {e} (method.teacher={m.teacher!r}, method.training={m.training!r})") from None


def to_phase(p: PhaseCfg):
    from once_for_all.schedule import Phase

    return Phase.from_dict({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in vars(p).items()})


PREDICTOR_KEYS = ("predictor_link", "predictor_ensemble", "predictor_bootstrap", "predictor_epochs",
                  "predictor_holdout")


def predictor_settings(cfg: dict) -> dict:
    """What a fitted predictor depends on besides its data: the seed and `PREDICTOR_KEYS` of a config as a plain
    dict (a job's config.yaml; keys it predates take their defaults)."""
    defaults = {f.name: f.default for f in fields(OFAMethodCfg)}
    return {"seed": cfg["seed"], **{k: cfg["method"].get(k, defaults[k]) for k in PREDICTOR_KEYS}}
