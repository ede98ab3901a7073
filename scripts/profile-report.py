#!/usr/bin/env python3
# The report of `make profile` (scripts/profile.sh): reads the folder the runner wrote (cases.tsv
# and one perf.data per case and round) and prints the Markdown that goes under PROFILE.md's
# heading. Usage: profile-report.py DIR
import re, statistics, subprocess, sys
d = sys.argv[1]
lines = open(f"{d}/cases.tsv").read().splitlines()
cpus = int(lines[0].split("\t")[1])
# (index, its control's index, role, TPS per round, name); role: baseline, control, pg_jwt,
# floor (the parallel-safe floor function), floor_serial (the same declared PARALLEL UNSAFE).
cases = []
for l in lines[1:]:
    i, control, role, runs, name = l.split("\t", 4)
    cases.append((int(i), int(control), [float(t) for t in runs.split(",")], name, role))
rounds = len(cases[0][2])

def report(i, r, children, sort):
    p = subprocess.run(
        ["perf", "report", "--stdio", "-i", f"{d}/case{i}-{r}.data", "--children" if children else "--no-children",
         "--sort", sort, "-g", "none", "--percent-limit", "0"],
        capture_output=True, text=True)
    rows = [l for l in p.stdout.splitlines() if l.strip() and not l.startswith("#")]
    if p.returncode != 0 or not rows:
        sys.exit(f"perf report of case {i}, round {r} failed: {p.stderr.strip()[:300]}")
    return rows

def us(pct, tps):
    # cpu-clock samples every recorded CPU, busy or idle: a sample's share of all samples times
    # the recorded CPUs is its share of wall time; per transaction, divided by the TPS.
    return float(pct.rstrip("%")) / 100 * cpus * 1e6 / tps

med = statistics.median
libs = ["postgres", "[kernel.kallsyms]", "libc.so.6", "pg_jwt.so"]
# by_dso[i][r][lib]: µs per transaction of case i in round r.
by_dso = {}
for i, _, runs, _, _ in cases:
    by_dso[i] = []
    for r, tps in enumerate(runs):
        rows = {}
        for l in report(i, r, False, "dso"):
            m = re.match(r"\s*([\d.]+%)\s+(.*\S)", l)
            if m:
                rows[m.group(2)] = us(m.group(1), tps)
        by_dso[i].append(rows)

def total(i, r):
    return 1e6 / cases[i][2][r]

print(f"Section 4c's workload, {rounds} interleaved rounds, each run under `perf record` ({'one CPU, pinned' if cpus == 1 else f'{cpus} CPUs, unpinned'}).")
print("Microseconds per transaction: wall time on the recorded CPUs (the backends and pgbench) over")
print("the transactions, medians of the rounds. A difference is the median over the rounds of that")
print("round's difference, so that drift common to a round cancels. Findings, not targets: `make bench`")
print("measures the targets; pg_jwt is built with frame pointers here, which costs it a little.")
print("The kernel's column includes the CPU's idle time. A libc or PostgreSQL function that pg_jwt")
print("calls has no frame pointer: its samples skip the pg_jwt function that called it, whose")
print("inclusive time therefore comes out low (its caller's does not).\n")
print("| case | TPS (median) | µs per transaction | " + " | ".join(libs) + " |")
print("|---|---|---|" + "---|" * len(libs))
for i, c, runs, name, _ in cases:
    cells = [f"{med(r.get(l, 0.0) for r in by_dso[i]):.2f}" for l in libs]
    print(f"| {name} | {med(runs):.0f} | {med(1e6 / t for t in runs):.1f} | " + " | ".join(cells) + " |")

def role(name):
    return next((i for i, _, _, _, ro in cases if ro == name), None)

def against(i, ref, what):
    diff = ", ".join(
        f"{l} {med(by_dso[i][r].get(l, 0.0) - by_dso[ref][r].get(l, 0.0) for r in range(rounds)):+.2f}" for l in libs
    )
    spread = [total(i, r) - total(ref, r) for r in range(rounds)]
    print(f"- against {what}: {med(spread):+.1f} µs per transaction (rounds {min(spread):+.1f} to {max(spread):+.1f}; {diff})")

floor, serial = role("floor"), role("floor_serial")
if floor is not None:
    print("\n## The floor function\n")
    against(floor, cases[floor][1], "its control")
    if serial is not None:
        print(f"\nThe same function declared PARALLEL UNSAFE (no parallel path planned):\n")
        against(serial, cases[serial][1], "its control")
        against(serial, floor, "the parallel-safe floor function")
for i, c, runs, name, ro in cases:
    if ro != "pg_jwt":
        continue
    print(f"\n## {name}\n")
    against(i, c, "its control")
    if floor is not None and cases[floor][1] == c:
        against(i, floor, "the floor function")
    print("\npg_jwt's functions, µs per transaction, medians of the rounds (inclusive: with what they")
    print("call; own: in the function itself):\n")
    print("| function | inclusive | own |")
    print("|---|---|---|")
    per = {}
    for r, tps in enumerate(runs):
        for l in report(i, r, True, "dso,sym"):
            m = re.match(r"\s*([\d.]+%)\s+([\d.]+%)\s+(\S+)\s+\[.\]\s+(.*\S)", l)
            if m and m.group(3) == "pg_jwt.so":
                # A name may appear more than once (monomorphized copies): summed.
                incl, own = per.setdefault(m.group(4), [[0.0] * rounds, [0.0] * rounds])
                incl[r] += us(m.group(1), tps)
                own[r] += us(m.group(2), tps)
    rows = sorted(((med(v[0]), med(v[1]), k) for k, v in per.items()), reverse=True)
    for incl, own, sym in rows[:30]:
        print(f"| `{sym[:90]}` | {incl:.2f} | {own:.2f} |")
