"""Learned frame/resolution policies for video that really skip compute (AR-Net style).

    model = AdaptiveFrameModel(ModelConfig())          # policy + one backbone per resolution
    pretrain_backbone(...); train_policy(...); finetune(...)   # the three stages (stages.py)
    result = model.infer(clips)                        # argmax decisions, gather -> run -> scatter
    result.flops                                       # per-video FLOPs (2 x MAC), counted at run time
"""

from .actions import ActionSpace, skip_bookkeeping
from .backbones import BACKBONES, build_backbone
from .baselines import BASELINES, build_baseline
from .flops import FrameCosts, summarize_flops, video_flops
from .gumbel import gumbel_softmax_st, straight_through, temperature
from .inference import VideoResult, run_assigned
from .losses import BudgetController, efficiency_term, usage_balance
from .metrics import accuracy, mean_average_precision
from .model import AdaptiveFrameModel, ModelConfig, TrainOutput
from .policy import CELLS, Policy, PolicyConfig
from .stages import (
    PolicyTrainConfig,
    evaluate,
    finetune,
    precompute,
    pretrain_backbone,
    pretrain_policy_head,
    train_policy,
)

__all__ = [
    "ActionSpace", "AdaptiveFrameModel", "BACKBONES", "BASELINES", "BudgetController", "CELLS", "FrameCosts",
    "ModelConfig", "Policy", "PolicyConfig", "PolicyTrainConfig", "TrainOutput", "VideoResult", "accuracy",
    "build_backbone", "build_baseline", "efficiency_term", "evaluate", "finetune", "gumbel_softmax_st",
    "mean_average_precision", "precompute", "pretrain_backbone", "pretrain_policy_head", "run_assigned", "skip_bookkeeping",
    "straight_through", "summarize_flops", "temperature", "train_policy", "usage_balance", "video_flops",
]
