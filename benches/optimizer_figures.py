#!/usr/bin/env python3
"""Figures from the optimizer bench's traces (the Rust bench's and the Optuna anchors' JSON).

    python optimizer_figures.py TRACES.json [MORE.json ...]

Per problem and sampler, medians over seeds (see crates/optimizer/benches/optimizer/SUITE.md):
regret of the best truly feasible trial at 25/50/100 trials, trials to within 5 % of the
optimum, SLO breaches (noise-free violation or crash) in the first 50 trials, the worst breach
after the first five trials (relative to the limit), and in how many seeds the reported best
truly meets every constraint.
"""

import json
import math
import statistics
import sys


def load(paths):
    problems, runs = {}, []
    for path in paths:
        with open(path) as f:
            document = json.load(f)
        for problem in document["problems"]:
            problems[problem["name"]] = problem
        runs.extend(document["runs"])
    return problems, runs


def feasible(record):
    objective, violation, _ = record
    return objective is not None and violation <= 0


def regret(trials, upto, f_star):
    best = [t[0] for t in trials[:upto] if feasible(t)]
    return min(best) - f_star if best else math.inf


def trials_to_target(trials, f_star, budget):
    tolerance = 0.05 * (abs(f_star) if f_star != 0 else 1.0)
    for i, t in enumerate(trials):
        if feasible(t) and t[0] - f_star <= tolerance:
            return i + 1
    return budget + 1


def breaches(trials, upto=50):
    return sum(1 for t in trials[:upto] if not feasible(t))


def worst_severity(trials, upto=50, after=5):
    worst = 0.0
    for t in trials[after:upto]:
        if t[0] is None:
            continue  # crashes are counted as breaches, not given a severity
        worst = max(worst, t[1])
    return worst


def fmt(x):
    if math.isinf(x):
        return "inf"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def main():
    problems, runs = load(sys.argv[1:])
    samplers = sorted({r["sampler"] for r in runs}, key=lambda s: (s != "ours", s))
    header = (f"{'problem':<16} {'sampler':<11} {'seeds':>5} {'regret@25':>10} {'regret@50':>10} "
              f"{'regret@100':>10} {'to-5%':>6} {'breach@50':>9} {'worst':>8} {'max-worst':>9} "
              f"{'>2x':>5} {'reported-ok':>11}")
    for suite in ("tuning", "held-out"):
        names = [n for n, p in problems.items() if p["suite"] == suite]
        if not names:
            continue
        print(f"\n== {suite} problems (medians over seeds; regret on the noise-free surface)")
        print(header)
        print("-" * len(header))
        for name in names:
            f_star = problems[name]["f_star"]
            for sampler in samplers:
                chosen = [r for r in runs if r["problem"] == name and r["sampler"] == sampler]
                if not chosen:
                    continue
                budget = max(len(r["trials"]) for r in chosen)
                med = lambda xs: statistics.median(xs)  # noqa: E731
                row = [
                    med([regret(r["trials"], n, f_star) for r in chosen]) if budget >= n else math.nan
                    for n in (25, 50, 100)
                ]
                to5 = med([trials_to_target(r["trials"], f_star, budget) for r in chosen])
                count = med([breaches(r["trials"]) for r in chosen])
                severities = [worst_severity(r["trials"]) for r in chosen]
                last = str(min(budget, 100))
                reported = [r["reported"].get(last) for r in chosen]
                ok = sum(1 for r, i in zip(chosen, reported) if i is not None and feasible(r["trials"][i]))
                print(f"{name:<16} {sampler:<11} {len(chosen):>5} "
                      + " ".join(f"{'-' if math.isnan(x) else fmt(x):>10}" for x in row)
                      + f" {to5:>6.0f} {count:>9.1f} {fmt(med(severities)):>8} "
                      f"{fmt(max(severities)):>9} {sum(1 for v in severities if v > 1):>5} "
                      f"{f'{ok}/{len(chosen)}@{last}':>11}")
    print("\nbreach@50: trials in the first 50 whose noise-free constraints fail, or that crash;")
    print("worst: the largest relative violation after trial 5 (1 = twice the limit), median and max;")
    print(">2x: seeds with a breach worse than twice the limit after trial 5 (in the first 50 trials);")
    print("reported-ok: seeds whose reported best truly meets every constraint, at the last checkpoint.")


if __name__ == "__main__":
    main()
