"""`neo-bench`: run one benchmark (data, model, train, storage, scale) or all of them, printing figures."""

from __future__ import annotations

import importlib
import sys

# Benchmark name -> module exposing `main(argv: list[str] | None) -> int`.
BENCHMARKS: dict[str, str] = {
    "data": "neo.bench.data",
    "model": "neo.bench.model",
    "train": "neo.bench.train",
    "storage": "neo.bench.storage",
    "config": "neo.bench.config",
    "scale": "neo.bench.scale",
    "guard": "neo.bench.guard",
    "frozen-norm": "neo.bench.frozen_norm",
}
# Left out of `all`: scale generates ~0.5 GB of COCO-sized files and needs a few GB of RAM and minutes; guard is a
# pass/fail check of the demo's speed (make speed-guard, CI), 2-3.5 minutes.
HEAVY = {"scale", "guard"}

USAGE = """neo-bench: measure one part of neo and print figures (nothing is asserted).

examples (from the README):
  neo-bench model --preset rtdetr_r50 --size 544x960 --batch 2 --precision bf16 --channels-last
  neo-bench train --preset tiny --size 360p --batch 8 --precision 32-true bf16-mixed --channels-last both
  neo-bench data
  neo-bench storage

usage: neo-bench {data,model,train,storage,config,scale,guard,frozen-norm,all} [options]

  data     training-pipeline images/s per worker vs a PIL + torchvision baseline
  model    params, GFLOPs, forward / forward+backward time and peak memory of a preset
  train    steady-state training images/s and peak memory through the real LightningModule
  storage  cache-hit resolve latency, pull throughput, training-step cost of background uploads
  config   seconds from `neo-train <bad override>` to the error, per kind of mistake
  scale    COCO-sized data: cold/warm dataset start, loader memory with workers, validation vs faster-coco-eval
  guard    the demo's neo-train images/s vs neo-bench train, and the chosen precision vs the other (exit 1 if slow)
  frozen-norm  eval forward time with the backbone's frozen norms folded into the convs vs unfolded (exact)
  all      each of the above with its defaults, except scale

`neo-bench NAME --help` lists a benchmark's options."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch `neo-bench NAME [options]` to `neo.bench.NAME.main(options)`."""
    from neo.cli.output import print_user_error, setup_console
    from neo.config_problems import render

    setup_console()
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in {"-h", "--help"}:
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "all":
        codes = [_run(bench, []) for bench in BENCHMARKS if bench not in HEAVY]
        return max(codes)
    if name not in BENCHMARKS:
        return print_user_error("neo-bench", render(name, "is not a benchmark",
                                                    f"choose one of {', '.join([*BENCHMARKS, 'all'])}"))
    return _run(name, rest)


def _run(name: str, argv: list[str]) -> int:
    print(f"== neo-bench {name} ==", flush=True)
    module = importlib.import_module(BENCHMARKS[name])
    return int(module.main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
