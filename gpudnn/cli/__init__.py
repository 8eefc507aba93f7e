"""The `gpudnn` command line (also `python -m gpudnn`).

Bad arguments or data end with one line on stderr and exit code 2, never a traceback
(set GPUDNN_DEBUG=1 to see the traceback instead).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..backend import KINDS, BackendUnavailableError


def _cmd_info(args: argparse.Namespace) -> None:
    from .info import report

    info = report()
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


def _cmd_train(args: argparse.Namespace) -> None:
    from .train import train_job

    train_job(dataset=args.dataset, hidden=args.hidden, activation=args.activation, dropout=args.dropout, norm=args.norm,
              optimizer=args.optimizer, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, l1=args.l1,
              l2=args.l2, weight_decay=args.weight_decay, seed=args.seed, val_fraction=args.val_fraction,
              patience=args.patience, label=args.label, save=args.save, resume=args.resume, plot=args.plot,
              metrics_json=args.metrics_json, on_nonfinite=args.on_nonfinite, quiet=args.quiet)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .train import evaluate_job

    evaluate_job(model=args.model, dataset=args.dataset, label=args.label, split=args.split)


def _cmd_predict(args: argparse.Namespace) -> None:
    from .train import predict_job

    predict_job(model=args.model, input=args.input, output=args.output, label=args.label)


def _cmd_pca(args: argparse.Namespace) -> None:
    from .decomposition import pca_job

    pca_job(dataset=args.dataset, components=args.components, whiten=args.whiten, plot=args.plot, seed=args.seed)


def _cmd_autoencoder(args: argparse.Namespace) -> None:
    from .decomposition import autoencoder_job

    autoencoder_job(dataset=args.dataset, latent=args.latent, hidden=args.hidden, epochs=args.epochs,
                    lr=args.lr, batch_size=args.batch_size, plot=args.plot, seed=args.seed, quiet=args.quiet)


def _cmd_bench(args: argparse.Namespace) -> None:
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "harness.py").is_file():
        from .train import UsageError

        raise UsageError("the benchmarks ship with the source checkout: run `gpudnn bench` from a clone of gpudnn")
    sys.path.insert(0, str(root))
    from benchmarks.suite import run_suite

    run_suite(args.suite, quick=args.quick, json_path=args.json)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage text stays behind --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonneg_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gpudnn", description="Deep learning on NumPy/CuPy with fused Numba kernels.")
    parser.add_argument("--backend", choices=KINDS, default=None, help="array backend (default: $GPUDNN_BACKEND or auto)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("info", help="backend chosen and why, device, library versions").set_defaults(run=_cmd_info)

    t = sub.add_parser("train", help="train an MLP classifier (default: digits, offline)")
    t.add_argument("--dataset", default="digits", help="digits (default), mnist1d, blobs, spirals, or a .npz/.csv/IDX path")
    t.add_argument("--label", default=None, help="CSV label column, by name or index (default: last)")
    t.add_argument("--hidden", default="256,128", help="hidden layer widths, comma-separated (default 256,128)")
    t.add_argument("--activation", default="relu", help="hidden activation (relu, gelu, tanh, silu, ...)")
    t.add_argument("--dropout", type=float, default=0.1, help="dropout after each hidden layer (default 0.1)")
    t.add_argument("--norm", choices=("none", "layer", "batch"), default="none",
                   help="LayerNorm or BatchNorm1d between each hidden Dense and its activation (default none)")
    t.add_argument("--optimizer", default="adam", help="sgd, adam, adamw or rmsprop (default adam)")
    t.add_argument("--lr", type=_nonneg_float, default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--epochs", type=_positive_int, default=30, help="epochs (default 30)")
    t.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    t.add_argument("--l1", type=_nonneg_float, default=0.0, help="L1 coefficient")
    t.add_argument("--l2", type=_nonneg_float, default=0.0, help="L2 coefficient")
    t.add_argument("--weight-decay", type=_nonneg_float, default=0.0, help="decoupled weight decay")
    t.add_argument("--val-fraction", type=float, default=0.1, help="share of training data held out (default 0.1)")
    t.add_argument("--patience", type=int, default=None, help="early stopping patience in epochs (default off)")
    t.add_argument("--on-nonfinite", choices=("raise", "skip"), default="raise",
                   help="stop (default) or skip a batch whose loss or gradient is NaN/Inf")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--save", default=None, help="checkpoint path (.npz), written atomically after every epoch")
    t.add_argument("--resume", default=None, help="continue training from a checkpoint")
    t.add_argument("--plot", default=None, help="write training curves to this PNG")
    t.add_argument("--metrics-json", default=None, help="write history and test metrics to this JSON file")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(run=_cmd_train)

    e = sub.add_parser("evaluate", help="accuracy of a saved model on a dataset")
    e.add_argument("--model", required=True, help="checkpoint written by train --save")
    e.add_argument("--dataset", default=None, help="dataset (default: the one the model was trained on)")
    e.add_argument("--label", default=None, help="CSV label column")
    e.add_argument("--split", choices=("test", "train"), default="test")
    e.set_defaults(run=_cmd_evaluate)

    p = sub.add_parser("predict", help="class predictions of a saved model for a file of samples")
    p.add_argument("--model", required=True, help="checkpoint written by train --save")
    p.add_argument("--input", required=True, help=".npz (array X), .npy or .csv file of samples")
    p.add_argument("--label", default=None, help="CSV label column to drop, if the file has one")
    p.add_argument("--output", default=None, help="write predictions here (default: stdout)")
    p.set_defaults(run=_cmd_predict)

    c = sub.add_parser("pca", help="PCA of a dataset: explained variance, optional 2-D scatter")
    c.add_argument("--dataset", default="digits")
    c.add_argument("--components", type=_positive_int, default=2)
    c.add_argument("--whiten", action="store_true")
    c.add_argument("--plot", default=None, help="scatter of the first two components (PNG)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(run=_cmd_pca)

    a = sub.add_parser("autoencoder", help="train an autoencoder; compare with PCA at the same latent size")
    a.add_argument("--dataset", default="digits")
    a.add_argument("--latent", type=_positive_int, default=2)
    a.add_argument("--hidden", default="128", help="encoder hidden widths (decoder mirrors them)")
    a.add_argument("--epochs", type=_positive_int, default=60)
    a.add_argument("--lr", type=_nonneg_float, default=2e-3)
    a.add_argument("--batch-size", type=_positive_int, default=64)
    a.add_argument("--plot", default=None, help="latent scatter and reconstructions (PNG)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(run=_cmd_autoencoder)

    bn = sub.add_parser("bench", help="benchmarks against NumPy/PyTorch/scikit-learn (from a source checkout)")
    bn.add_argument("suite", choices=("kernels", "mlp", "pca", "all"), nargs="?", default="kernels")
    bn.add_argument("--quick", action="store_true", help="small shapes, a smoke run")
    bn.add_argument("--json", default=None, help="also write the results to this JSON file")
    bn.set_defaults(run=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .train import UsageError
    from ..training.loop import NonFiniteError

    args = build_parser().parse_args(argv)
    try:
        if args.backend:
            from ..backend import set_backend

            set_backend(args.backend)
        args.run(args)
        return 0
    except (BackendUnavailableError, UsageError, ValueError, TypeError, OSError, NonFiniteError,
            RuntimeError) as exc:
        if os.environ.get("GPUDNN_DEBUG"):
            raise
        print(f"gpudnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpudnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
