"""Streaming batch sources: the same batches as in-memory tensors, independent of workers, exact mid-epoch resume,
unreadable samples named or skipped, evaluation over a loader equal to evaluation over tensors."""

import signal

import pytest
import torch

from experiments.batches import TensorBatches
from experiments.callbacks import Callback
from experiments.config import OptimCfg
from experiments.errors import InputError
from experiments.objectives import Classification
from experiments.preemption import Preempted, PreemptionFlag
from experiments.streaming import LoaderBatches, LoaderCfg, StreamingSplits, keep_in_memory, sample_generator
from experiments.trainer import fit
from meter import Meter, MeterConfig


class Toy:
    """x = a fixed feature row (+ noise drawn from the sample's generator when `noisy`); y = its class."""

    def __init__(self, n=50, noisy=True, bad=()):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)
        self.noisy, self.bad = noisy, set(bad)

    def __len__(self):
        return len(self.x)

    def load(self, i, generator):
        if i in self.bad:
            raise OSError(f"cannot decode /data/img_{i}.jpg: broken")
        noise = torch.randn(8, generator=generator) if self.noisy and generator is not None else 0
        return self.x[i] + noise, int(self.y[i])


def _all(source, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in source.epoch(epoch, start)]


def test_loader_order_equals_tensor_batches():
    ds = Toy(noisy=False)
    ref = _all(TensorBatches(ds.x, ds.y, 8, seed=5), 3)
    got = _all(LoaderBatches(ds, 8, seed=5), 3)
    assert len(got) == len(ref) == 6
    for (a, b), (c, d) in zip(ref, got):
        assert torch.equal(a, c) and torch.equal(b, d)


@pytest.mark.parametrize("workers", [0, 2])
def test_same_batches_any_workers_and_from_any_start(workers):
    ds = Toy()
    one = _all(LoaderBatches(ds, 8, seed=1, cfg=LoaderCfg(num_workers=0)), 2)
    source = LoaderBatches(ds, 8, seed=1, cfg=LoaderCfg(num_workers=workers))
    for epoch_batches in (_all(source, 2), _all(source, 2, start=4)):  # persistent workers: reused across epochs
        for (a, b), (c, d) in zip(one[len(one) - len(epoch_batches):], epoch_batches):
            assert torch.equal(a, c) and torch.equal(b, d)
    assert len(_all(source, 2, start=4)) == 2
    other_epoch = _all(source, 3)
    assert not torch.equal(other_epoch[0][0], one[0][0])  # a new permutation and new per-sample draws


def test_sample_generator_is_a_function_of_seed_epoch_index():
    draw = lambda *k: torch.rand(3, generator=sample_generator(*k))  # noqa: E731
    assert torch.equal(draw(1, 2, 3), draw(1, 2, 3))
    assert len({tuple(draw(*k).tolist()) for k in [(1, 2, 3), (1, 2, 4), (1, 3, 3), (2, 2, 3)]}) == 4


def test_unreadable_sample_is_an_input_error_naming_the_file_or_skipped_and_counted():
    ds = Toy(n=16, bad={3})
    with pytest.raises(InputError, match=r"/data/img_3\.jpg.*data\.skip_bad=true"):
        for _ in LoaderBatches(ds, 16, seed=0, cfg=LoaderCfg(num_workers=2)).epoch(0):
            pass
    splits = StreamingSplits(ds, ds, ds, LoaderCfg(skip_bad=True, eval_batch_size=5))
    (x, y), = list(splits.train_batches(16, seed=0).epoch(0))
    assert x.shape == (15, 8) and splits.skipped == 1  # the batch lost the bad sample; counted once
    assert sum(len(y) for _, y in splits.eval_batches("test")) == 15 and splits.skipped == 1


def test_loader_evaluation_equals_tensor_evaluation():
    ds = Toy(n=23)
    model = torch.nn.Linear(8, 3)
    splits = StreamingSplits(ds, ds, ds, LoaderCfg(eval_batch_size=5))
    obj = Classification()
    obj.eval_batch_size = 5
    assert obj.evaluate_batches(model, splits.eval_batches("val")) == obj.evaluate(model, ds.x, ds.y)
    assert torch.equal(splits.x_val[2:4], ds.x[2:4]) and splits.x_train.shape == (23, 8)


def test_keep_in_memory():
    assert keep_in_memory("auto", 2**30, 1.0) and not keep_in_memory("auto", 2**30 + 1, 1.0)
    assert keep_in_memory("true", 10**15, 1.0) and not keep_in_memory("False", 1, 1.0)
    with pytest.raises(ValueError, match="data.in_memory='maybe'"):
        keep_in_memory("maybe", 1, 1.0)


class _Preempt(Callback):
    def __init__(self, flag, at):
        self.flag, self.at = flag, at

    def on_step_end(self, loop, loss):
        if loop.step == self.at:
            self.flag.signum = signal.SIGTERM


def _fit(ds, ckpt=None, callbacks=(), preemption=None, workers=2, init=0):
    torch.manual_seed(init)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    splits = StreamingSplits(ds, ds, ds, LoaderCfg(num_workers=workers, eval_batch_size=16))
    optim = OptimCfg(name="sgd", lr=0.1, momentum=0.9, batch_size=8, epochs=3)
    extra = {"preemption": preemption} if preemption is not None else {}
    with Meter(MeterConfig(enabled=False), out_dir=None) as meter:
        fit(model, splits, optim, seed=2, total_steps=18, meter=meter, tag="t", progress=False,
            checkpoint_path=ckpt, callbacks=callbacks, **extra)
    return model


def test_mid_epoch_preemption_with_workers_resumes_bit_identical(tmp_path):
    ds = Toy(n=48)
    reference = _fit(ds, workers=0)
    flag, ckpt = PreemptionFlag(), tmp_path / "checkpoint.pt"
    with pytest.raises(Preempted):
        _fit(ds, ckpt, callbacks=[_Preempt(flag, 9)], preemption=flag)  # epoch 1, batch 3 of 6
    resumed = _fit(ds, ckpt, init=99)  # different init: everything comes from the checkpoint
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
