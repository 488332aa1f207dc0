#!/usr/bin/env python3
"""Optuna's samplers on the problems of crates/optimizer/benches/optimizer, for comparison.

The problems are not written twice: their spaces and baselines come from the Rust bench's
`--describe`, and every configuration is evaluated by its `--serve` mode, so Optuna sees the very
same functions, noise (drawn from seed and trial) and crashes as servo's sampler. The traces have
the format the Rust bench writes.

Samplers: `tpe` = TPESampler(multivariate=True, constraints_func=...), `gp` = GPSampler(
constraints_func=...). Every run enqueues the problem's baseline first, as servo starts from it.
Crashed trials are told as TrialState.FAIL. The reported best is what Optuna would show: the
best feasible reading. The traces are rewritten after each problem, so an interrupted run keeps
the problems it finished.

    python optimizer_optuna.py --bench BINARY --out traces.json [--seeds 10] [--first-seed 0]
        [--budget 100] [--suite held-out] [--problems a,b] [--samplers tpe,gp]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import optuna
from optuna.trial import TrialState

CHECKPOINTS = (25, 50, 100)


class Evaluator:
    """The Rust bench in `--serve` mode: one JSON line in, one out."""

    def __init__(self, binary):
        self.process = subprocess.Popen(
            [binary, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __call__(self, problem, seed, trial, config):
        request = {"problem": problem, "seed": seed, "trial": trial, "config": config}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            sys.exit("the evaluator exited; see its error above")
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def suggest(trial, param):
    name, domain = param["name"], param["domain"]
    kind = domain["type"]
    if kind == "float":
        return trial.suggest_float(
            name, domain["low"], domain["high"], step=domain.get("step"), log=domain.get("log", False)
        )
    if kind == "int":
        return trial.suggest_int(
            name, domain["low"], domain["high"], step=domain.get("step", 1), log=domain.get("log", False)
        )
    return trial.suggest_categorical(name, domain["choices"])


def make_sampler(name, seed):
    constraints = lambda t: t.user_attrs.get("constraints", [])  # noqa: E731
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constraints_func=constraints)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
    sys.exit(f"unknown sampler {name!r}; expected tpe or gp")


def run(problem, sampler_name, seed, budget, evaluate):
    params = problem["space"]["params"]
    names = [p["name"] for p in params]
    study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler_name, seed))
    study.enqueue_trial(dict(zip(names, problem["baseline"])))
    trials, reported, readings = [], {}, []
    for index in range(budget):
        trial = study.ask()
        config = [suggest(trial, p) for p in params]
        answer = evaluate(problem["name"], seed, index, config)
        trials.append(answer["truth"])
        if answer["objective"] is None:
            study.tell(trial, state=TrialState.FAIL)
            readings.append(None)
        else:
            trial.set_user_attr("constraints", answer["constraints"])
            study.tell(trial, answer["objective"])
            feasible = all(c <= 0 for c in answer["constraints"])
            readings.append(answer["objective"] if feasible else None)
        if index + 1 in CHECKPOINTS:
            candidates = [(y, i) for i, y in enumerate(readings) if y is not None]
            reported[str(index + 1)] = min(candidates)[1] if candidates else None
    return trials, reported


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="the optimizer bench binary")
    parser.add_argument("--out", required=True, help="where to write the JSON traces")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--suite", default="all")
    parser.add_argument("--problems", default="")
    parser.add_argument("--samplers", default="tpe,gp")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    described = json.loads(
        subprocess.run([args.bench, "--describe"], check=True, capture_output=True, text=True).stdout
    )
    wanted = set(filter(None, args.problems.split(",")))
    problems = [
        p for p in described
        if (not wanted or p["name"] in wanted) and (args.suite == "all" or p["suite"] == args.suite)
    ]
    evaluate = Evaluator(args.bench)
    runs = []
    for problem in problems:
        for sampler in args.samplers.split(","):
            start = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                run_start = time.perf_counter()
                trials, reported = run(problem, sampler, seed, args.budget, evaluate)
                runs.append({
                    "sampler": f"optuna-{sampler}",
                    "problem": problem["name"],
                    "seed": seed,
                    "trials": trials,
                    "reported": reported,
                    "seconds": time.perf_counter() - run_start,
                })
            print(f"{problem['name']} optuna-{sampler}: {args.seeds} seeds in "
                  f"{time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            # GPSampler takes minutes per problem: an interrupted run keeps what it finished.
            write(args.out, problems, runs)
    evaluate.close()


def write(path, problems, runs):
    """The traces so far, replacing `path` whole (never a half-written file)."""
    done = {run["problem"] for run in runs}
    partial = f"{path}.partial"
    with open(partial, "w") as f:
        json.dump({"problems": [p for p in problems if p["name"] in done], "runs": runs,
                   "optuna_version": optuna.__version__}, f)
    os.replace(partial, path)


if __name__ == "__main__":
    main()
