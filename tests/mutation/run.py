#!/usr/bin/env python3
"""Mutation testing: applies each mutation of mutations.txt on its own,
rebuilds, runs the test binaries it names, and reverts. A mutation is caught
when the build fails or a named test binary fails (or times out); the score
is caught / total. Run it in a checkout whose build directory is configured
(`make build` first); it restores every file it touches, even on Ctrl-C.

    python3 tests/mutation/run.py [--build build] [--only SUBSTRING] [--jobs 2]
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def mutations():
    out = []
    with open(os.path.join(HERE, "mutations.txt")) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.rstrip("\n").split(" | ")]
            if len(parts) != 4:
                sys.exit(f"mutations.txt:{number}: expected 'file | tests | find | replace', got {line!r}")
            path, tests, find, replace = parts
            out.append((number, path, tests.split(","), find, replace))
    return out


def run(cmd, timeout):
    try:
        return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="")
    ap.add_argument("--jobs", default="2")
    a = ap.parse_args()
    selected = [m for m in mutations() if a.only in m[1]]
    for number, path, _, find, _ in selected:  # every mutation must apply exactly once
        text = open(os.path.join(ROOT, path)).read()
        if text.count(find) != 1:
            sys.exit(f"mutations.txt:{number}: '{find}' occurs {text.count(find)} times in {path}, expected once")
    caught = 0
    for i, (number, path, tests, find, replace) in enumerate(selected, 1):
        full = os.path.join(ROOT, path)
        original = open(full).read()
        start = time.time()
        try:
            with open(full, "w") as f:
                f.write(original.replace(find, replace))
            targets = [f"test_{t}" for t in tests] + (["neurite"] if "cli" in tests else [])
            built = run(["cmake", "--build", a.build, "-j", a.jobs, "--target", *targets], 1800) == 0
            failed = not built
            for t in tests if built else []:
                if run([os.path.join(a.build, "tests", f"test_{t}")], 900) != 0:
                    failed = True
                    break
        finally:
            with open(full, "w") as f:
                f.write(original)
        caught += failed
        verdict = "caught" if failed else "MISSED"
        if not built:
            verdict += " (build)"
        print(f"[{i}/{len(selected)}] {verdict:15} {path}:{number} {find[:60]!r} ({time.time() - start:.0f} s)", flush=True)
    # Rebuild the untouched sources so the build directory matches the tree again.
    run(["cmake", "--build", a.build, "-j", a.jobs], 3600)
    print(f"mutation score: {caught} of {len(selected)} caught ({100.0 * caught / max(len(selected), 1):.0f} %)")


if __name__ == "__main__":
    main()
