#!/usr/bin/env python3
"""Figures from the optimizer bench's traces (the Rust bench's and the Optuna anchors' JSON).

    python optimizer_figures.py TRACES.json [MORE.json ...]

Per problem and sampler, medians over seeds (see crates/optimizer/benches/optimizer/SUITE.md):
regret of the best truly feasible trial at 25/50/100 trials, trials to within 5 % of the
optimum, SLO breaches (noise-free violation or crash) in the first 50 trials, the worst breach
after the first five trials (relative to the limit), and in how many seeds the reported best
truly meets every constraint.

When the traces hold servo's sampler, random search and an Optuna anchor, a last table checks the
held-out figures against the safe-exploration goals (breaches at most 0.3x TPE's, no breach past
twice a limit after trial 5, regret at 50 at most half the better anchor's, never worse than
random search at any budget, the reported best truly feasible in 9 of 10 seeds), so the README's
verdicts come from one rule rather than from reading the tables by eye. Where the median is
behind random search's, it also says how often a run of ours is ahead of a random one there, so a
tie of two medians is not read as a loss.
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


def ahead_of(a, b):
    """How often a regret of `a` is below one of `b`, over every pair (ties count half): 0.5 is a
    coin flip, whatever the medians say."""
    wins = sum((x < y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def ranges(numbers):
    """`[2, 3, 4, 9]` as `2-4, 9`."""
    spans = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def goals(problems, runs):
    """One line per held-out problem: each goal's figures and whether it is met."""
    def chosen(name, sampler):
        return [r for r in runs if r["problem"] == name and r["sampler"] == sampler]

    names = [n for n, p in problems.items() if p["suite"] == "held-out"]
    med = statistics.median
    lines = []
    for name in names:
        ours, rnd = chosen(name, "ours"), chosen(name, "random")
        tpe, gp = chosen(name, "optuna-tpe"), chosen(name, "optuna-gp")
        if not ours or not rnd or not (tpe or gp):
            continue
        f_star = problems[name]["f_star"]
        constrained = any(t[1] != 0 for r in runs if r["problem"] == name for t in r["trials"])
        cells = []
        if tpe and constrained:
            ratio = med([breaches(r["trials"]) for r in ours]) / max(
                med([breaches(r["trials"]) for r in tpe]), 1e-9)
            cells.append(f"breaches {ratio:.2f}x TPE {'met' if ratio <= 0.3 else 'NOT met'}")
        severe = sum(1 for r in ours if worst_severity(r["trials"]) > 1)
        cells.append(f">2x in {severe} seeds {'met' if severe == 0 else 'NOT met'}")
        anchor = min(med([regret(r["trials"], 50, f_star) for r in a]) for a in (tpe, gp) if a)
        mine = med([regret(r["trials"], 50, f_star) for r in ours])
        # Regrets below zero (a constraint met within noise beyond the published optimum) and
        # zero count as reaching the optimum.
        met = mine <= 0 or (anchor > 0 and mine <= 0.5 * anchor)
        cells.append(f"regret@50 {fmt(mine)} vs {fmt(anchor)} {'met' if met else 'NOT met'}")
        budget = min(min(len(r["trials"]) for r in ours), min(len(r["trials"]) for r in rnd))
        at = {n: ([regret(r["trials"], n, f_star) for r in ours],
                  [regret(r["trials"], n, f_star) for r in rnd]) for n in range(1, budget + 1)}
        worse = [n for n, (a, b) in at.items() if med(a) > med(b)]
        if worse:
            # A median a hair behind can be a coin flip: say how often a run of ours is ahead of
            # a random one at the worst of those budgets.
            ahead = min(ahead_of(*at[n]) for n in worse)
            cells.append(f"worse than random at {ranges(worse)} (ours ahead in >= {ahead:.0%})")
        else:
            cells.append("never worse than random met")
        last = str(min(budget, 100))
        ok = sum(1 for r in ours if r["reported"].get(last) is not None
                 and feasible(r["trials"][r["reported"][last]]))
        cells.append(f"reported {ok}/{len(ours)} {'met' if ok >= 0.9 * len(ours) else 'NOT met'}")
        lines.append(f"{name:<16} " + "; ".join(cells))
    return lines


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
    lines = goals(problems, runs)
    if lines:
        print("\n== held-out figures against the safe-exploration goals (servo's sampler)")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
