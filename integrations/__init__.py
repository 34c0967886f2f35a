"""Adapters for other trainers, each importing its framework only when its module is imported:

    integrations.lightning   `LotteryTicketCallback`, `MeterCallback` (a Lightning `Callback`)
    integrations.hf          `LotteryTicketHFCallback`, `MeterHFCallback` (an HF `TrainerCallback`)

The trainer-agnostic parts (`TicketRun`: IMP across fits in `lth.run_imp`'s order; `MeterRun`: one metered fit)
live in integrations.ticket_run and integrations.meter_run, and import neither framework. Nothing in lth,
sparse_moe or meter imports this package.
"""
