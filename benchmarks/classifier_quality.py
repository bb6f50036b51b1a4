"""Train the classifier with every method on the default data and compare them on held-out text.

    python benchmarks/classifier_quality.py [--methods finetune setfit] [--workspace finetuning]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pz2.config import ClassifierConfig
from pz2.fileio import atomic_write_json
from pz2.training.classifier import METHODS, train_classifier
from pz2.workspace import Workspace

KEYS = ("test_macro_f1", "real_test_macro_f1", "challenge_macro_f1", "test_ece", "real_test_ece", "challenge_ece",
        "validation_ece_before", "validation_ece_after", "train_seconds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS), choices=sorted(METHODS))
    parser.add_argument("--workspace", type=Path, default=Path("finetuning"))
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    base = ws.training_config().classifier
    results = {}
    for method in args.methods:
        cfg = ClassifierConfig(**{**base.model_dump(), "method": method})
        out = Path("benchmarks/results/classifier") / method
        metrics = train_classifier(ws, cfg, ws.model_config(), out).metrics
        results[method] = {k: metrics.get(k, float("nan")) for k in KEYS}
    print(f"{'metric':24s}" + "".join(f"{m:>12s}" for m in results))
    for key in KEYS:
        print(f"{key:24s}" + "".join(f"{results[m][key]:12.4f}" for m in results))
    atomic_write_json(Path("benchmarks/results/classifier_quality.json"), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
