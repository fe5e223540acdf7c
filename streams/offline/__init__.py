"""Offline tools: replay of an event file through the engine, its input checks and outputs, the backtest
against baselines, the HTML report, ``explain``, backfill of history and holdout uplift."""
