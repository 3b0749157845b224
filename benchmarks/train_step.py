"""Time one DiSSECT pretraining step on each Keras backend and in plain PyTorch.

Every measurement runs in its own process, so each backend starts cold and its
peak memory (maximum resident set size) is its own. Images come from memory
(one fixed batch), so the input pipeline is not part of the figure.

    python benchmarks/train_step.py --sizes 128 224 --output results.json

prints a markdown table of images/s (median over the timed steps), the ratio
against the fastest plain-PyTorch variant of the same network, and peak memory.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
REFERENCE_VARIANTS = ("eager", "channels_last")
# Channels-last under `torch.compile`; its first step compiles for minutes on
# a CPU, so it runs only with --compile-reference.
COMPILED_VARIANT = "compiled"
# Keras's jit_compile="auto" leaves XLA off for TensorFlow on a machine with
# only CPUs, so TensorFlow also runs with jit_compile=True as variant "xla".
KERAS_VARIANTS = {"tensorflow": ("default", "xla"), "jax": ("default",), "torch": ("default",)}
HERE = os.path.dirname(os.path.abspath(__file__))


def peak_memory_mib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_keras(args):
    import numpy as np
    import tensorflow as tf

    import keras

    from keras_dissect.models import DiSSECT
    from keras_dissect.optimizers import pretraining_optimizer

    total = args.warmup + args.steps
    model = DiSSECT(total_steps=1000, channels=1, quantize=args.model == "dissect")
    model.compile(
        optimizer=pretraining_optimizer(args.batch_size, steps_per_epoch=1000),
        jit_compile=True if args.variant == "xla" else "auto",
    )
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.size, args.size, 1)
    batch = {
        "view1": rng.random(shape, dtype=np.float32),
        "view2": rng.random(shape, dtype=np.float32),
    }
    dataset = tf.data.Dataset.from_tensors(batch).repeat()

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            # Reading the loss waits for asynchronous backends (JAX) to finish.
            float(np.asarray(logs["loss"]))
            self.times.append(time.perf_counter())

    timer = StepTimer()
    model.fit(dataset, steps_per_epoch=total, epochs=1, verbose=0, callbacks=[timer])
    # `compile` resolves jit_compile="auto"; the record stores the result.
    args.jit_compile = bool(model.jit_compile)
    return [b - a for a, b in zip(timer.times[args.warmup - 1 :], timer.times[args.warmup :])]


def time_reference(args):
    import torch

    sys.path.insert(0, HERE)
    from torch_reference import build_step

    channels_last = args.variant != "eager"
    step = build_step(
        quantize=args.model == "dissect",
        channels_last=channels_last,
        compile_model=args.variant == COMPILED_VARIANT,
    )
    generator = torch.Generator().manual_seed(0)
    views = [
        torch.rand(args.batch_size, 1, args.size, args.size, generator=generator)
        for _ in range(2)
    ]
    if channels_last:
        views = [view.contiguous(memory_format=torch.channels_last) for view in views]
    times = []
    for index in range(args.warmup + args.steps):
        start = time.perf_counter()
        step(*views)
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
    return times


def measure(args):
    times = time_reference(args) if args.backend == "reference" else time_keras(args)
    median = statistics.median(times)
    record = {
        "backend": args.backend,
        "variant": args.variant,
        "model": args.model,
        "size": args.size,
        "batch_size": args.batch_size,
        "steps": len(times),
        "median_step_s": median,
        "images_per_s": args.batch_size / median,
        "peak_memory_mib": peak_memory_mib(),
        "jit_compile": getattr(args, "jit_compile", None),
    }
    print("RESULT " + json.dumps(record), flush=True)


def run_child(backend, variant, model, size, args):
    command = [
        sys.executable, __file__, "--child", "--backend", backend, "--variant", variant,
        "--model", model, "--size", str(size), "--batch-size", str(args.batch_size),
        "--steps", str(args.steps), "--warmup", str(args.warmup),
    ]
    environment = dict(os.environ, KERAS_BACKEND=backend if backend in BACKENDS else "torch")
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    print(completed.stderr[-3000:], file=sys.stderr)
    return {"backend": backend, "variant": variant, "model": model, "size": size,
            "error": completed.stderr.strip().splitlines()[-1:]}


def table(records):
    lines = [
        "| size | model | backend | variant | images/s | x best PyTorch | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in records:
        if "error" in record:
            lines.append(f"| {record['size']} | {record['model']} | {record['backend']} | "
                         f"{record['variant']} | failed: {record['error']} | | |")
            continue
        references = [
            other["images_per_s"] for other in records
            if other["backend"] == "reference" and "error" not in other
            and other["size"] == record["size"] and other["model"] == record["model"]
        ]
        ratio = f"{record['images_per_s'] / max(references):.2f}" if references else "n/a"
        lines.append(
            f"| {record['size']} | {record['model']} | {record['backend']} | "
            f"{record['variant']} | {record['images_per_s']:.2f} | {ratio} | "
            f"{record['peak_memory_mib']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--variant", default="default")
    parser.add_argument("--model", default="dissect", choices=("dissect", "byol"))
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224],
                        help="image sides in pixels to measure")
    parser.add_argument("--models", nargs="+", default=["dissect", "byol"])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps first (compilation happens here)")
    parser.add_argument("--output", help="JSON file to write all records to")
    parser.add_argument("--compile-reference", action="store_true",
                        help="also time the PyTorch reference under torch.compile")
    args = parser.parse_args()

    if args.child:
        measure(args)
        return

    variants = REFERENCE_VARIANTS + ((COMPILED_VARIANT,) if args.compile_reference else ())
    records = []
    for size in args.sizes:
        for model in args.models:
            for variant in variants:
                records.append(run_child("reference", variant, model, size, args))
                print(records[-1], flush=True)
            for backend in args.backends:
                for variant in KERAS_VARIANTS[backend]:
                    records.append(run_child(backend, variant, model, size, args))
                    print(records[-1], flush=True)
    print(table(records))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump({"date": time.strftime("%Y-%m-%d"), "records": records}, handle, indent=2)


if __name__ == "__main__":
    main()
