"""The argument parser of the `gpudnn` command: one subcommand per job, each job a function whose
keyword arguments are the subcommand's options."""

from __future__ import annotations

import argparse

from ..backend import KINDS, PRECISIONS
from ..nn.mlp import NORMS
from ..optim import Optimizer
from .bench import bench_job
from .decomposition import autoencoder_job, pca_job
from .export import export_job
from .info import info_job
from .options import add_compare_parser, add_optimizer_knobs, add_reduction_options
from .train import evaluate_job, predict_job, train_job
from .usage import layer_widths, nonneg_float, positive_int


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the usage text stays behind --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gpudnn", description="Deep learning on NumPy/CuPy with fused Numba kernels.")
    parser.add_argument("--backend", choices=KINDS, default=None,
                        help="array backend (default: $GPUDNN_BACKEND or auto)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("info", help="backend chosen and why, device, library versions").set_defaults(run=info_job)

    t = sub.add_parser("train", help="train an MLP classifier (default: digits, offline)")
    t.add_argument("--dataset", default="digits",
                   help="digits (default), mnist1d, blobs, spirals, or a .npz/.csv/IDX path")
    t.add_argument("--label", default=None, help="CSV label column, by name or index (default: last)")
    t.add_argument("--hidden", type=layer_widths, default=[256, 128],
                   help="hidden layer widths, comma-separated (default 256,128)")
    t.add_argument("--activation", default="relu", help="hidden activation (relu, gelu, tanh, silu, ...)")
    t.add_argument("--dropout", type=float, default=0.1, help="dropout after each hidden layer (default 0.1)")
    t.add_argument("--norm", choices=NORMS, default="none",
                   help="LayerNorm or BatchNorm1d between each hidden Dense and its activation (default none)")
    t.add_argument("--optimizer", choices=[name.lower() for name in Optimizer.registry], default="adam",
                   help="the optimizer (default adam)")
    t.add_argument("--lr", type=nonneg_float, default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--epochs", type=positive_int, default=30, help="epochs (default 30)")
    t.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    t.add_argument("--l1", type=nonneg_float, default=0.0, help="L1 coefficient")
    t.add_argument("--l2", type=nonneg_float, default=0.0, help="L2 coefficient")
    t.add_argument("--weight-decay", type=nonneg_float, default=0.0, help="decoupled weight decay")
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
    add_reduction_options(t)
    add_optimizer_knobs(t)
    t.add_argument("--matmul-precision", choices=PRECISIONS, default="highest",
                   help="float32 GEMMs on the GPU: highest (full float32) or high (TF32 tensor cores)")
    t.set_defaults(run=train_job)

    e = sub.add_parser("evaluate", help="accuracy of a saved model on a dataset")
    e.add_argument("--model", required=True, help="checkpoint written by train --save")
    e.add_argument("--dataset", default=None, help="dataset (default: the one the model was trained on)")
    e.add_argument("--label", default=None, help="CSV label column")
    e.add_argument("--split", choices=("test", "train"), default="test")
    e.set_defaults(run=evaluate_job)

    p = sub.add_parser("predict", help="class predictions of a saved model for a file of samples")
    p.add_argument("--model", required=True, help="checkpoint written by train --save")
    p.add_argument("--input", required=True, help=".npz (array X), .npy or .csv file of samples")
    p.add_argument("--label", default=None, help="CSV label column to drop, if the file has one")
    p.add_argument("--output", default=None, help="write predictions here (default: stdout)")
    p.set_defaults(run=predict_job)

    c = sub.add_parser("pca", help="PCA of a dataset: explained variance, optional 2-D scatter")
    c.add_argument("--dataset", default="digits")
    c.add_argument("--components", type=positive_int, default=2)
    c.add_argument("--whiten", action="store_true")
    c.add_argument("--plot", default=None, help="scatter of the first two components (PNG)")
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(run=pca_job)

    a = sub.add_parser("autoencoder", help="train an autoencoder; compare with PCA at the same latent size")
    a.add_argument("--dataset", default="digits")
    a.add_argument("--latent", type=positive_int, default=2)
    a.add_argument("--hidden", type=layer_widths, default=[128], help="encoder hidden widths (decoder mirrors them)")
    a.add_argument("--epochs", type=positive_int, default=60)
    a.add_argument("--lr", type=nonneg_float, default=2e-3)
    a.add_argument("--batch-size", type=positive_int, default=64)
    a.add_argument("--plot", default=None, help="latent scatter and reconstructions (PNG)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(run=autoencoder_job)

    add_compare_parser(sub)

    x = sub.add_parser("export", help="a saved model as ONNX and/or PyTorch-named safetensors weights")
    x.add_argument("--model", required=True, help="checkpoint written by train --save")
    x.add_argument("--onnx", default=None, help="write an ONNX model here (needs gpudnn[onnx])")
    x.add_argument("--safetensors", default=None, help="write torch.nn.Sequential weights here (gpudnn[torch-io])")
    x.add_argument("--softmax", action="store_true", help="end the ONNX graph with a softmax (probabilities)")
    x.add_argument("--no-scaling", action="store_true",
                   help="export the network as trained, on standardized inputs (default: takes raw features)")
    x.set_defaults(run=export_job)

    bn = sub.add_parser("bench", help="benchmarks against NumPy/PyTorch/scikit-learn (from a source checkout)")
    bn.add_argument("suite", choices=("kernels", "mlp", "pca", "sklearn", "all", "distributed", "ptx"), nargs="?",
                    default="kernels",
                    help="ptx: every CUDA kernel through NVVM and ptxas (registers, spills, instructions; no GPU)")
    bn.add_argument("--quick", action="store_true", help="small shapes, a smoke run")
    bn.add_argument("--json", default=None, help="also write the results to this JSON file (ptx: one per "
                    "architecture, '{arch}' in the name stands for it: sm90)")
    bn.add_argument("--arch", default="sm_90,sm_80", help="ptx: architectures to compile for (default sm_90,sm_80)")
    bn.set_defaults(run=bench_job)
    return parser


