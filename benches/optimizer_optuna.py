#!/usr/bin/env python3
"""Optuna's default TPE sampler on the problems of benches/optimizer.rs, for comparison.

Same problems, baselines, seeds and budget as the Rust bench, and the same JSON trace format:
every run starts with the problem's baseline (enqueued), then asks the default
`TPESampler(seed=seed)` for the rest of the budget. Constraints reach it through
`Trial.set_constraint` (Optuna >= 5.0, which deprecated `constraints_func`) or `constraints_func`
(older versions); both feed the same constrained TPE. Failed trials (the mixed problem's
out-of-memory crashes) are told as `TrialState.FAIL`.

    python optimizer_optuna.py --out traces.json [--seeds 10] [--first-seed 0] [--budget 100]
        [--problems branin,hartmann6,mixed]
"""

import argparse
import itertools
import json
import math
import sys
import time

import optuna
from optuna.trial import TrialState


def branin(x1, x2):
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]
HARTMANN_A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(x):
    total = 0.0
    for alpha, a, p in zip(HARTMANN_ALPHA, HARTMANN_A, HARTMANN_P):
        total += alpha * math.exp(-sum(aj * (xj - pj) ** 2 for aj, xj, pj in zip(a, x, p)))
    return -total


# name -> (CPU overhead factor, heap size factor, pause ms per GiB of heap)
GCS = {"serial": (0.06, 1.00, 4.0), "parallel": (0.03, 1.15, 1.5), "g1": (0.015, 1.35, 0.8)}


def mixed(cpu, memory, workers, gc):
    """(cost, latency - SLO in ms), or None when the heap does not fit (the service crashes).

    Must match mixed() in benches/optimizer.rs.
    """
    overhead, heap_factor, pause = GCS[gc]
    heap = (0.3 + 0.06 * workers) * heap_factor
    if memory < heap:
        return None
    gc_load = overhead * heap / (memory - 0.8 * heap)
    effective_cpu = cpu * (1 - min(gc_load, 0.9))
    capacity = 100.0 * effective_cpu * min(workers / (2.0 * cpu), 1.0)
    utilization = 150.0 / capacity
    base = 20.0 * (1 + 0.015 * workers)
    latency = base / (1 - utilization) + pause * memory if utilization < 1 else 1000.0
    return cpu + 0.125 * memory, latency - 60.0


def mixed_optimum():
    best = math.inf
    for cpu_step, mem_step, workers, gc in itertools.product(range(76), range(31), range(1, 33), GCS):
        result = mixed(0.25 + 0.05 * cpu_step, 0.5 + 0.25 * mem_step, workers, gc)
        if result is not None and result[1] <= 0:
            best = min(best, result[0])
    return best


def ask_branin(trial):
    return {"x1": trial.suggest_float("x1", -5, 10), "x2": trial.suggest_float("x2", 0, 15)}


def ask_hartmann6(trial):
    return {f"x{i}": trial.suggest_float(f"x{i}", 0, 1) for i in range(1, 7)}


def ask_mixed(trial):
    return {
        "cpu": trial.suggest_float("cpu", 0.25, 4.0, step=0.05),
        "memory": trial.suggest_float("memory", 0.5, 8.0, step=0.25),
        "workers": trial.suggest_int("workers", 1, 32),
        "gc": trial.suggest_categorical("gc", list(GCS)),
    }


def evaluate(problem, params):
    """(objective, constraints), or None for a failed trial."""
    if problem == "branin":
        return branin(params["x1"], params["x2"]), []
    if problem == "hartmann6":
        return hartmann6([params[f"x{i}"] for i in range(1, 7)]), []
    result = mixed(params["cpu"], params["memory"], params["workers"], params["gc"])
    return None if result is None else (result[0], [result[1]])


PROBLEMS = {
    "branin": (ask_branin, {"x1": 2.5, "x2": 7.5}, lambda: 0.397887357729738),
    "hartmann6": (ask_hartmann6, {f"x{i}": 0.5 for i in range(1, 7)}, lambda: -3.322368011415515),
    "mixed": (ask_mixed, {"cpu": 3.0, "memory": 4.0, "workers": 8, "gc": "parallel"}, mixed_optimum),
}


def run(problem, seed, budget):
    ask, baseline, _ = PROBLEMS[problem]
    legacy_constraints = problem == "mixed" and not hasattr(optuna.trial.Trial, "set_constraint")
    sampler = optuna.samplers.TPESampler(
        seed=seed,
        constraints_func=(lambda t: t.user_attrs["constraints"]) if legacy_constraints else None,
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(baseline)
    best = None
    trace = []
    failed = 0
    for _ in range(budget):
        trial = study.ask()
        params = ask(trial)
        result = evaluate(problem, params)
        if result is None:
            study.tell(trial, state=TrialState.FAIL)
            failed += 1
        else:
            objective, constraints = result
            if legacy_constraints:
                trial.set_user_attr("constraints", constraints)
            else:
                for i, value in enumerate(constraints):
                    trial.set_constraint(f"c{i}", value)
            study.tell(trial, objective)
            if all(c <= 0 for c in constraints):
                best = objective if best is None else min(best, objective)
        trace.append(best)
    return trace, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON traces")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--problems", default="branin,hartmann6,mixed")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    problems, runs = [], []
    for problem in args.problems.split(","):
        if problem not in PROBLEMS:
            sys.exit(f"unknown problem {problem!r}; expected one of {', '.join(PROBLEMS)}")
        problems.append({"name": problem, "f_star": PROBLEMS[problem][2](), "budget": args.budget})
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            trace, failed = run(problem, seed, args.budget)
            runs.append(
                {
                    "sampler": "optuna",
                    "problem": problem,
                    "seed": seed,
                    "best": trace,
                    "failed": failed,
                    "seconds": time.perf_counter() - start,
                }
            )
        print(f"optuna: {problem} done ({args.seeds} seeds)", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump({"problems": problems, "runs": runs, "optuna_version": optuna.__version__}, f)


if __name__ == "__main__":
    main()
