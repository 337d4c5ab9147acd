"""The long fuzzing profile: many Hypothesis examples in parallel processes, a report.

    python tools/fuzz.py [--cases 100000] [--jobs 2] [--kinds zoo,catalogue,...]
                         [--timeout 20] [--memory 2G] [--report fuzz-report.json]

The strategies and the property are the quick test profile's (tests/fuzz_strategies.py):
every input builds and runs, or raises a CaffeLiteError; no other exception, no
numpy floating-point warning, no example slower than --timeout seconds (a hang), no
worker that dies. Work is cut into chunks of --chunk examples with their own seeds,
so a run is reproducible and a finding names the kind and seed that made it.
Exits 1 when anything was found; each finding (deduplicated by exception type and
the line that raised it) is printed with the input that triggered it.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as futures
import json
import os
import resource
import signal
import sys
import time
import traceback
import warnings

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

KINDS = ("zoo", "catalogue", "caffemodel", "solver")


class Hang(Exception):
    """An example that ran past the per-example deadline."""


def _on_alarm(signum, frame):
    raise Hang("example ran past the deadline")


def _setup_worker(memory_bytes):
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGALRM, _on_alarm)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from caffe_lite.errors import DuplicateLayerNameWarning
    warnings.simplefilter("ignore", DuplicateLayerNameWarning)   # mutations duplicate


def run_chunk(kind, seed, examples, timeout):
    """Run ``examples`` examples of one kind from one seed in this process:
    (Counter of outcomes, [finding dicts])."""
    import fuzz_strategies as fs
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    import caffe_lite as caffe
    from caffe_lite.errors import DuplicateLayerNameWarning
    caffe.set_memory_limit("256M")
    folder = fs.scratch_folder()
    if kind == "zoo":
        strategy, check = fs.mutated_zoo_text(), fs.check_net_text
    elif kind == "catalogue":
        strategy, check = fs.catalogue_net(), fs.check_net_param
    elif kind == "caffemodel":
        proto, data = fs.small_caffemodel(folder)
        strategy = fs.corrupted_bytes(data)

        def check(corrupt):
            return fs.check_caffemodel(proto, corrupt, folder)
    else:
        strategy = fs.mutated_solver_lines()

        def check(lines):
            return fs.check_solver(lines, folder)
    outcomes, findings = collections.Counter(), []

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=_generate_only())
    @given(strategy)
    def each(value):
        signal.alarm(timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                warnings.simplefilter("ignore", DuplicateLayerNameWarning)
                outcomes[check(value)] += 1
        except BaseException as exc:         # noqa: B036 -- a finding, whatever it is
            outcomes["FOUND"] += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            findings.append({"kind": kind, "seed": seed, "error": type(exc).__name__,
                             "message": str(exc)[:300],
                             "where": f"{os.path.relpath(where.filename, ROOT)}:"
                                      f"{where.lineno}",
                             "input": _as_text(value)})
        finally:
            signal.alarm(0)
    each()
    return outcomes, findings


def _generate_only():
    from hypothesis import Phase
    return [Phase.generate]                  # no shrinking: findings are kept as drawn


def _as_text(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return "\n".join(value)
    return str(value)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--timeout", type=int, default=20, help="seconds per example")
    parser.add_argument("--memory", default="2G", help="address-space limit per worker")
    parser.add_argument("--seed", type=int, default=0, help="first chunk's seed")
    parser.add_argument("--report", help="write the findings and counts as JSON here")
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    from caffe_lite.blob import parse_size
    memory = parse_size(args.memory)
    chunks = []
    seed, left = args.seed, args.cases
    while left > 0:
        kind = args.kinds[len(chunks) % len(args.kinds)]
        chunks.append((kind, seed, min(args.chunk, left), args.timeout))
        seed, left = seed + 1, left - args.chunk
    totals = {kind: collections.Counter() for kind in args.kinds}
    findings, started = {}, time.perf_counter()
    pending = list(chunks)
    while pending:
        with futures.ProcessPoolExecutor(args.jobs, initializer=_setup_worker,
                                         initargs=(memory,)) as pool:
            running = {pool.submit(run_chunk, *chunk): chunk for chunk in pending}
            pending = []
            try:
                for future in futures.as_completed(running):
                    chunk = running[future]
                    outcomes, found = future.result()
                    totals[chunk[0]].update(outcomes)
                    for finding in found:
                        findings.setdefault((finding["error"], finding["where"]), finding)
                    done = sum(sum(c.values()) for c in totals.values())
                    print(f"\r{done:,} cases, {len(findings)} findings, "
                          f"{time.perf_counter() - started:.0f} s", end="", flush=True)
            except futures.process.BrokenProcessPool:
                # a worker died (a real crash): record it, rerun what had not finished
                # one chunk shorter, so the run always ends
                finished = {running[f] for f in running if f.done() and not f.exception()}
                lost = [c for c in running.values() if c not in finished]
                findings.setdefault(("WorkerDied", str(lost[0][:2])), {
                    "kind": lost[0][0], "seed": lost[0][1], "error": "WorkerDied",
                    "message": "a worker process died", "where": "-", "input": ""})
                pending = lost[1:]
    print()
    report(totals, findings, time.perf_counter() - started, args)
    return 1 if findings else 0


def report(totals, findings, seconds, args):
    cases = sum(sum(c.values()) for c in totals.values())
    print(f"{cases:,} cases in {seconds:.0f} s on {args.jobs} processes "
          f"({cases / max(seconds, 1e-9):.0f}/s)")
    print(f"{'kind':<12}{'cases':>9}{'ran':>9}{'refused':>9}{'found':>7}  most common refusals")
    for kind, counts in totals.items():
        refused = {k: v for k, v in counts.items() if k not in ("ran", "FOUND")}
        common = ", ".join(f"{k} {v}" for k, v in
                           collections.Counter(refused).most_common(3))
        print(f"{kind:<12}{sum(counts.values()):>9,}{counts['ran']:>9,}"
              f"{sum(refused.values()):>9,}{counts['FOUND']:>7}  {common}")
    for finding in findings.values():
        print(f"\n== {finding['error']} at {finding['where']} ({finding['kind']}, seed "
              f"{finding['seed']}): {finding['message']}\n{finding['input'][:2000]}")
    if args.report:
        with open(args.report, "w") as handle:
            json.dump({"cases": cases, "seconds": seconds,
                       "totals": {k: dict(v) for k, v in totals.items()},
                       "findings": list(findings.values())}, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
