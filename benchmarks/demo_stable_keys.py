"""Do clusters keep their stable keys from one day to the next? Daily runs over the demo's store.

The demo's store (``llmscope demo --records N --seed 7 --now T --no-dashboard``) is made once;
then, for the code of a git ref (the before) and for this checkout (the after), each on its own
copy of the store, ``llmscope analyze`` runs once a day over sliding windows: the current
window is one day, ending at T minus ``days - 1``, ..., T, and the baseline the seven days
before it (the command's default). Each run's clusters inherit keys from the run before
(``analysis/matching.py``).

Retention from one day to the next: the share of yesterday's clusters whose stable key is
still a cluster's key today. A topic that appears for the first time gets a new key without
costing retention (it was not among yesterday's clusters); a key lost is a cluster that
moved, split or merged although the traffic barely changed (six of seven baseline days are
shared by consecutive runs).

    python benchmarks/demo_stable_keys.py [--against main] [--records 3000] [--days 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_speed import code_of  # noqa: E402

from llmscope.db import make_engine  # noqa: E402
from llmscope.db.models import AnalysisRun, RunCluster  # noqa: E402

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _env(code: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{code}{os.pathsep}{code / 'sdk' / 'src'}",
        "HF_HUB_OFFLINE": "1",
    }


def make_demo(path: Path, records: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "llmscope", "demo", "--records", str(records), "--seed", "7",
         "--now", NOW.isoformat(), "--no-dashboard", "--database-url", f"sqlite:///{path}"],
        env=_env(ROOT), check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip


def daily_keys(code: Path, store: Path, days: int) -> list[list[str]]:
    """Run ``analyze`` by ``code`` once per day on ``store``; each run's cluster keys."""
    url = f"sqlite:///{store}"
    engine = make_engine(url)
    with Session(engine) as session:
        earlier = set(session.scalars(select(AnalysisRun.id)).all())
    engine.dispose()
    for back in range(days - 1, -1, -1):
        end = NOW - timedelta(days=back)
        current = f"{(end - timedelta(days=1)).isoformat()}/{end.isoformat()}"
        subprocess.run(
            [sys.executable, "-m", "llmscope", "analyze", "--current", current,
             "--database-url", url],
            env=_env(code), check=True, capture_output=True, cwd=code,
        )  # fmt: skip
    engine = make_engine(url)
    with Session(engine) as session:
        runs = [
            r
            for r in session.scalars(select(AnalysisRun).order_by(AnalysisRun.created_at)).all()
            if r.id not in earlier
        ]
        keys = [
            sorted(
                k
                for k in session.scalars(
                    select(RunCluster.stable_key).where(
                        RunCluster.run_id == run.id, RunCluster.cluster_id >= 0
                    )
                ).all()
                if k
            )
            for run in runs
        ]
    engine.dispose()
    return keys


def retention(keys: list[list[str]]) -> tuple[list[str], float]:
    """Per day ``kept/yesterday's`` cells, and the share kept over all days."""
    cells, kept_all, total = [], 0, 0
    for yesterday, today in zip(keys, keys[1:], strict=False):
        kept = len(set(yesterday) & set(today))
        cells.append(f"{kept}/{len(yesterday)} (+{len(set(today) - set(yesterday))} new)")
        kept_all, total = kept_all + kept, total + len(yesterday)
    return cells, kept_all / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="git ref of the before ('' to skip)")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        demo = Path(workdir) / "demo.db"
        make_demo(demo, args.records)
        print(f"demo store, {args.records} calls: {time.perf_counter() - started:.0f}s")
        trees = [("after (this checkout)", ROOT)]
        if args.against:
            before = Path(workdir) / "before"
            before.mkdir()
            trees.insert(0, (f"before ({args.against})", code_of(args.against, before)))
        header = " | ".join(f"day {d} → {d + 1}" for d in range(1, args.days))
        print(f"\n| code | {header} | kept |")
        print("|---|" + "---|" * args.days)
        for name, code in trees:
            store = Path(workdir) / f"{len(name)}-{name[:6]}.db"
            shutil.copyfile(demo, store)
            cells, share = retention(daily_keys(code, store, args.days))
            print(f"| {name} | {' | '.join(cells)} | {share:.1%} |", flush=True)
    print(
        f"\n{time.perf_counter() - started:.0f}s; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
