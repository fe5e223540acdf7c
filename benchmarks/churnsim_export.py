"""Export a ChurnSim customer base (``fightchurn`` package) as canonical churnwatch events, no PostgreSQL.

ChurnSim (Gold, *Fighting Churn with Data*; the ChurnSim report, SSRN 4540160) simulates subscribers whose
churn follows from the *utility* of what they do each month (low engagement, not drops). Its own driver
writes to PostgreSQL; this script calls the same simulation objects (``ChurnSimulation.simulate_customer``,
month by month with the configured growth, as ``ChurnSimulation.run_simulation`` does) and writes JSON lines.

``fightchurn`` pins old versions of many packages (packaging 23, pyparsing 2, xgboost, shap, ...), so it gets
its own virtualenv rather than churnwatch's::

    python3.11 -m venv .venv-churnsim && .venv-churnsim/bin/pip install fightchurn==1.2.0
    .venv-churnsim/bin/python benchmarks/churnsim_export.py --model crm6 --seed 300 --customers 800 \\
        --end 2022-08-01 --out crm6-300.jsonl --truth crm6-300.truth.jsonl

Events: every simulated action becomes usage (one line per account, day, user and action, ``count`` = how
many), each customer's first subscription a ``subscription_created`` and a churn (the end of the last
subscription before the simulation's end) a ``subscription_canceled`` with the plan and MRR.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any


def _simulation(model: str, seed: int, customers: int, start: str, end: str) -> Any:
    import fightchurn.churnsim as churnsim_package
    import numpy as np
    from fightchurn.churnsim.churnsim import ChurnSimulation
    from fightchurn.churnsim.customer import Customer
    from omegaconf import OmegaConf

    conf = Path(churnsim_package.__file__).parent / "conf"
    cfg = OmegaConf.merge(OmegaConf.load(conf / "default.yaml"), OmegaConf.load(conf / f"{model}.yaml"))
    cfg.pop("defaults", None)
    cfg.init_customers, cfg.random_seed = customers, seed
    cfg.start_date, cfg.end_date = start, end
    random.seed(seed)
    np.random.seed(seed)
    os.environ.setdefault("CHURN_OUT_DIR", tempfile.mkdtemp(prefix="churnsim-"))
    Customer.ID_FILE = os.path.join(tempfile.mkdtemp(prefix="churnsim-ids-"), "ids.txt")
    return ChurnSimulation(cfg)


def simulate(model: str, seed: int, customers: int, start: str, end: str) -> tuple[list[Any], Any]:
    from dateutil.relativedelta import relativedelta

    sim = _simulation(model, seed, customers, start, end)
    out = [sim.simulate_customer(sim.start_date) for _ in range(sim.init_customers)]
    month = sim.start_date + relativedelta(months=+1)
    n_add = int(-(-sim.init_customers * sim.monthly_growth_rate // 1))
    while month < sim.end_date:
        out.extend(sim.simulate_customer(month) for _ in range(n_add))
        month += relativedelta(months=+1)
        n_add = int(-(-n_add * (1.0 + sim.monthly_growth_rate) // 1))
    return out, sim


def _ts(moment: datetime | date, hour: int = 12) -> str:
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{moment.isoformat()}T{hour:02d}:00:00Z"


def export(customers: list[Any], sim: Any, events_path: Path, truth_path: Path) -> int:
    names = list(next(iter(sim.behavior_models.values())).behave_names)
    lines: list[tuple[str, bytes]] = []
    truth = []
    for customer in customers:
        account = f"cs-{customer.id:06d}"
        subs = customer.subscriptions
        first = min(subs, key=lambda s: s[1])
        last_end = max(s[2] for s in subs)
        churned = last_end <= sim.end_date
        base = {"account_id": account, "plan": str(first[0]), "mrr": float(first[3])}
        created = _ts(first[1], 0)
        lines.append(
            (created, _json({"type": "billing", "ts": created, "kind": "subscription_created", **base}))
        )
        counts: Counter[tuple[date, int, int]] = Counter()
        first_time: dict[tuple[date, int, int], datetime] = {}
        for when, type_id, user, _value in customer.events:
            key = (when.date(), int(type_id), int(user))
            counts[key] += 1
            first_time[key] = min(first_time.get(key, when), when)
        for key, count in counts.items():
            ts = _ts(first_time[key])
            body = {
                "type": "usage",
                "account_id": account,
                "ts": ts,
                "event": str(names[key[1]]),
                "user_id": f"{account}-u{key[2]}",
                "count": count,
            }
            lines.append((ts, _json(body)))
        canceled = _ts(last_end - timedelta(days=1), 23) if churned else None
        if canceled is not None:
            body = {"type": "billing", "ts": canceled, "kind": "subscription_canceled", **base}
            lines.append((canceled, _json(body)))
        truth.append(
            {
                "account_id": account,
                "churned": churned,
                "churn_ts": canceled,
                "start": first[1].isoformat(),
            }
        )
    lines.sort(key=lambda item: item[0])
    events_path.write_bytes(b"".join(line + b"\n" for _, line in lines))
    truth_path.write_text("".join(json.dumps(row) + "\n" for row in truth))
    return len(lines)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="crm6")
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--customers", type=int, default=800)
    parser.add_argument("--start", default="2022-01-01")
    parser.add_argument("--end", default="2022-08-01")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args(argv)
    customers, sim = simulate(args.model, args.seed, args.customers, args.start, args.end)
    n = export(customers, sim, args.out, args.truth)
    print(f"{len(customers)} customers, {n} events -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
