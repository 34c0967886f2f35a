"""The Lightning and HF Trainer callbacks run IMP (2 levels, both baselines) and give the masks and unit starting
weights of `lth.run_imp` on the same model, optimizer and data order; the meter callbacks report energy, CO2e and
counted FLOPs to the trainer's loggers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from integrations.ticket_run import TicketRun
from lth import preset_names, run_imp

STEPS, BATCH, LR = 4, 8, 0.2


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _data(n: int = STEPS * BATCH, features: int = 6):
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, features, generator=g), torch.randint(0, 3, (n,), generator=g)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def reference(model: nn.Module, loss_of, batches, momentum: float = 0.0, **kwargs) -> tuple[list, dict]:
    """lth.run_imp with a plain loop over `batches` in order: rows and each unit's starting (weights, mask)."""
    starts = {}

    def train(m, unit) -> dict:
        starts[(unit.level, unit.kind)] = (copy.deepcopy(m.state_dict()), {k: v.clone() for k, v in unit.mask.items()})
        opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=momentum)
        for step, batch in enumerate(batches):
            if step == unit.rewind_step:
                unit.snapshot(step, opt)
            opt.zero_grad()
            loss_of(m, batch).backward()
            opt.step()
            unit.apply()
        return {}

    rows = run_imp(model, train, levels=2, **kwargs)
    return rows, starts


def assert_same_units(starts: dict, expected: dict) -> None:
    assert list(starts) == list(expected)
    for key, (state, mask) in expected.items():
        got_state, got_mask = starts[key]
        assert sorted(got_mask) == sorted(mask), key
        for n in mask:
            assert torch.equal(got_mask[n], mask[n]), (key, n)
        for n in state:
            torch.testing.assert_close(got_state[n], state[n], rtol=0, atol=1e-6, msg=f"{key} {n}")


KINDS = [(0, "ticket"), (1, "ticket"), (1, "random_reinit"), (1, "random_prune"),
         (2, "ticket"), (2, "random_reinit"), (2, "random_prune")]


def test_ticket_run_refuses_a_level_zero_that_ends_before_the_rewind_step():
    run = TicketRun(mlp(), levels=1, rewind=5)
    run.begin()
    run.step_start(0)
    run.step_end()
    with pytest.raises(RuntimeError, match="before step 5"):
        run.end()


def test_lightning_callback_equals_run_imp():
    L = pytest.importorskip("lightning")
    from integrations.lightning import LotteryTicketCallback, MeterCallback

    x, y = _data()
    batches = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    loss_of = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    _, expected = reference(mlp(), loss_of, batches, momentum=0.9, rates=0.3, seed=0)

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = mlp()

        def training_step(self, batch, _):
            loss = loss_of(self.model, batch)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR, momentum=0.9)

    class Record(L.Callback):
        def __init__(self):
            self.starts = {}

        def on_fit_start(self, trainer, pl_module):
            unit = ticket.run.unit
            self.starts[(unit.level, unit.kind)] = (copy.deepcopy(pl_module.model.state_dict()),
                                                     {k: v.clone() for k, v in unit.mask.items()})

    class Capture(L.pytorch.loggers.Logger):
        name, version, metrics = "capture", "0", []

        def log_metrics(self, metrics, step=None):
            self.metrics.append(dict(metrics))

        def log_hyperparams(self, *args, **kwargs):
            pass

    lit = Lit()
    ticket, record, meter, logger = LotteryTicketCallback(lit.model, levels=2, rates=0.3, seed=0), Record(), \
        MeterCallback(intensity_g_per_kwh=400.0), Capture()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=False)
    while not ticket.done:
        L.Trainer(max_steps=STEPS - ticket.start_step, callbacks=[ticket, record, meter], logger=logger,
                  accelerator="cpu", devices=1, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0).fit(lit, loader)
    assert [(r["lth/level"], r["lth/kind"]) for r in ticket.rows] == KINDS
    assert all("train_loss" in r for r in ticket.rows)
    assert_same_units(record.starts, expected)
    # The meter: one row per fit, its keys in the trainer's logger.
    assert len(meter.rows) == len(KINDS)
    row = meter.rows[0]
    assert row["train/steps"] == STEPS and row["flops/train_counted_steps"] == 1
    dense_step = 3 * 2 * BATCH * (6 * 16 + 16 * 16 + 16 * 3)  # forward 2*MAC; backward twice that, less the
    assert row["flops/train_total"] == STEPS * (dense_step - 2 * BATCH * 6 * 16)  # input grad of the first layer
    assert row["carbon/g_co2e"] == pytest.approx(row["energy/kwh"] * 400.0 * row["carbon/pue"])
    logged = [m for m in logger.metrics if "energy/joules" in m]
    assert len(logged) == len(KINDS) and logged[0]["flops/train_total"] == row["flops/train_total"]
    assert any("lth/percent_remaining" in m for m in logger.metrics)


def tiny_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=16, num_labels=3,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return transformers.BertForSequenceClassification(cfg)


def test_hf_trainer_callback_equals_run_imp(tmp_path):
    transformers = pytest.importorskip("transformers")
    from integrations.hf import LotteryTicketHFCallback, MeterHFCallback

    g = torch.Generator().manual_seed(1)
    ids, labels = torch.randint(0, 40, (STEPS * BATCH, 8), generator=g), torch.randint(0, 3, (STEPS * BATCH,), generator=g)
    batches = [(ids[i:i + BATCH], labels[i:i + BATCH]) for i in range(0, len(ids), BATCH)]
    loss_of = lambda m, b: m(input_ids=b[0], labels=b[1]).loss  # noqa: E731
    kw = dict(preset="bert", strategy="magnitude_global", rates=0.2, seed=0)
    model = tiny_bert()
    names = preset_names(model, "bert")
    _, expected = reference(copy.deepcopy(model), loss_of, batches, names=names, strategy="magnitude_global",
                            rates=0.2, seed=0)

    class Record(transformers.TrainerCallback):
        starts = {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            unit = ticket.run.unit
            self.starts[(unit.level, unit.kind)] = (copy.deepcopy(model.state_dict()),
                                                     {k: v.clone() for k, v in unit.mask.items()})

    class Logs(transformers.TrainerCallback):
        seen = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.seen.append(dict(logs))

    dataset = [{"input_ids": i, "labels": lab} for i, lab in zip(ids, labels)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=STEPS, per_device_train_batch_size=BATCH, learning_rate=LR,
        lr_scheduler_type="constant", optim="sgd", weight_decay=0.0, max_grad_norm=0.0,
        train_sampling_strategy="sequential", report_to=[], save_strategy="no", use_cpu=True, seed=0,
        disable_tqdm=True, dataloader_num_workers=0)
    ticket, record, logs = LotteryTicketHFCallback(model, levels=2, **kw), Record(), Logs()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[ticket, record, logs])
    meter = MeterHFCallback(intensity_g_per_kwh=300.0).attach(trainer)
    while not ticket.done:
        trainer.args.max_steps = STEPS - ticket.start_step
        trainer.train()
    assert [(r["lth/level"], r["lth/kind"]) for r in ticket.rows] == KINDS
    assert_same_units(record.starts, expected)
    assert sorted(expected[(1, "ticket")][1]) == sorted(names)
    final = [s for s in logs.seen if "train_runtime" in s]
    assert len(final) == len(KINDS) and all("energy/joules" in s and "carbon/g_co2e" in s for s in final)
    assert meter.rows[0]["flops/train_total"] > 0 and meter.rows[0]["train/steps"] == STEPS
    assert "energy/joules" in trainer.state.log_history[-1]


@pytest.mark.parametrize("optimizer_state", ["fresh", "rewound"])
def test_ticket_run_rewinding_to_step_k_equals_run_imp(optimizer_state):
    """Rewind to step 2 (with the step-2 momentum buffers when "rewound"): TicketRun driven by a plain loop that
    trains `STEPS - start_step` steps gives run_imp's masks and unit starts."""
    x, y = _data()
    batches = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    loss_of = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    kw = dict(rates=0.3, seed=0, rewind=2, optimizer_state=optimizer_state)
    expected = {}

    def train(m, unit) -> dict:  # run_imp's loop: steps start_step..STEPS on the same batches
        expected[(unit.level, unit.kind)] = (copy.deepcopy(m.state_dict()), {k: v.clone() for k, v in unit.mask.items()})
        opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=0.9)
        if unit.optimizer_state is not None:
            opt.load_state_dict(unit.optimizer_state)
        for step in range(unit.start_step, STEPS):
            if step == unit.rewind_step:
                unit.snapshot(step, opt)
            opt.zero_grad()
            loss_of(m, batches[step]).backward()
            opt.step()
            unit.apply()
        return {}

    run_imp(mlp(), train, levels=2, **kw)
    model, starts = mlp(), {}
    run = TicketRun(model, levels=2, **kw)
    while not run.done:
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
        start = run.start_step
        unit = run.begin(opt)
        starts[(unit.level, unit.kind)] = (copy.deepcopy(model.state_dict()), {k: v.clone() for k, v in unit.mask.items()})
        for step in range(start, STEPS):
            run.step_start(step, opt)
            opt.zero_grad()
            loss_of(model, batches[step]).backward()
            opt.step()
            run.step_end()
        run.end()
    assert [(r["lth/level"], r["lth/kind"]) for r in run.rows] == KINDS
    assert_same_units(starts, expected)
