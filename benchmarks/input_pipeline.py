"""Measure the two-view pretraining pipeline's throughput on prepared NIH images.

Prepares the NIH ChestX-ray14 builder (config "224") from a manual folder in
the NIH layout into a scratch folder, then times `pretraining_dataset` at batch
32, after a few warm-up batches, cycling over the train split.

    python benchmarks/input_pipeline.py --manual-dir PATH/TO/nih-chestxray14-sample
"""

import argparse
import json
import os
import statistics
import tempfile
import time

WARMUP_BATCHES = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual-dir", required=True,
                        help="folder with the NIH files (images/, Data_Entry_2017_v2020.csv, ...)")
    parser.add_argument("--data-dir", help="prepared-dataset folder (default: a temporary one)")
    parser.add_argument("--config", default="224", help="builder config (image side in pixels)")
    parser.add_argument("--image-size", type=int, default=224, help="view side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40, help="timed batches")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported")
    args = parser.parse_args()

    import tensorflow as tf

    from keras_dissect.data.loading import load_split
    from keras_dissect.data.pipelines import pretraining_dataset

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="dissect-bench-")
    start = time.perf_counter()
    train = load_split("nih_chest_xray14", "train", config=args.config,
                       data_dir=data_dir, manual_dir=args.manual_dir)
    preparation_s = time.perf_counter() - start

    views = pretraining_dataset(train.cache().repeat(), args.image_size, args.batch_size)
    iterator = iter(views)
    for _ in range(WARMUP_BATCHES):
        next(iterator)

    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.batches):
            batch = next(iterator)
        tf.debugging.assert_all_finite(batch["view1"], "pipeline output")
        rates.append(args.batches * args.batch_size / (time.perf_counter() - start))

    record = {
        "config": args.config,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "images_per_s_median": statistics.median(rates),
        "images_per_s_all": rates,
        "preparation_s": preparation_s,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
