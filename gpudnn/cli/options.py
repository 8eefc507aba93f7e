"""The options `gpudnn train` shares with `gpudnn compare`: the reduction in front of the classifier, and
every optimizer and learning-rate schedule setting of the library."""

from __future__ import annotations

import argparse

from .compare import VARIANTS, compare_job, variant_list
from .knobs import SCHEDULES, beta_pair
from .reduction import Reduction, parse_reduction, reduction_list
from .usage import layer_widths, nonneg_float, positive_int


def add_reduction_options(parser: argparse.ArgumentParser, *, choice: bool = True, fine_tune: bool = True) -> None:
    """--reduce (unless the command takes a list of its own), --reduce-epochs, --reduce-hidden, --fine-tune."""
    g = parser.add_argument_group("dimensionality reduction (fitted on the training split only)")
    if choice:
        g.add_argument("--reduce", type=parse_reduction, default=None, metavar="SPEC",
                       help="none (default), pca:K, pca:0.95 (variance fraction), pca-whiten:K or autoencoder:K: "
                            "a frozen first stage of the model, saved in the checkpoint")
    g.add_argument("--reduce-epochs", type=positive_int, default=40,
                   help="epochs to pretrain an autoencoder reduction (default 40)")
    g.add_argument("--reduce-hidden", type=layer_widths, default=[128],
                   help="hidden widths of an autoencoder reduction's encoder (default 128)")
    if fine_tune:
        g.add_argument("--fine-tune", type=int, default=0, metavar="EPOCHS",
                       help="after training on the frozen reduction, unfreeze it and train EPOCHS more end to end")


def add_optimizer_knobs(parser: argparse.ArgumentParser) -> None:
    """Every optimizer setting (refused for an optimizer without it) and the learning-rate schedule."""
    g = parser.add_argument_group("optimizer settings (default: the library's; refused where the optimizer has none)")
    g.add_argument("--momentum", type=nonneg_float, default=None, help="momentum (sgd, rmsprop)")
    g.add_argument("--nesterov", action="store_const", const=True, default=None, help="Nesterov momentum (sgd)")
    g.add_argument("--dampening", type=nonneg_float, default=None, help="momentum dampening (sgd)")
    g.add_argument("--betas", type=beta_pair, default=None, metavar="B1,B2", help="moment decay rates (adam, adamw)")
    g.add_argument("--eps", type=nonneg_float, default=None, help="denominator epsilon (adam, adamw, rmsprop)")
    g.add_argument("--alpha", type=nonneg_float, default=None, help="squared-gradient decay rate (rmsprop)")
    g.add_argument("--centered", action="store_const", const=True, default=None,
                   help="centered RMSprop (rmsprop)")
    g.add_argument("--max-grad-norm", type=nonneg_float, default=None,
                   help="clip the global gradient norm to this value (every optimizer)")
    g.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning-rate schedule over the run: constant (default), step or cosine")
    g.add_argument("--warmup", type=nonneg_float, default=None, metavar="EPOCHS",
                   help="linear warm-up over this many epochs first (fractions allowed, e.g. 0.5)")
    g.add_argument("--step-every", type=nonneg_float, default=None, metavar="EPOCHS",
                   help="--schedule step: multiply the rate by --step-gamma every EPOCHS (default a third of the run)")
    g.add_argument("--step-gamma", type=nonneg_float, default=None, help="--schedule step: factor (default 0.1)")


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """`gpudnn compare`: one run per optimizer variant and reduction, the same network and seed."""
    c = sub.add_parser("compare", help="train the same MLP with each optimizer (and reduction): one plot, one table")
    c.add_argument("--optimizers", type=variant_list, default=["sgd", "momentum", "adam", "rmsprop"],
                   help=f"comma-separated, from {', '.join(VARIANTS)} (default sgd,momentum,adam,rmsprop)")
    c.add_argument("--reduce", type=reduction_list, default=[Reduction("none")], metavar="SPECS",
                   help="comma-separated reductions, e.g. none,pca:16,autoencoder:16 (default none)")
    c.add_argument("--dataset", default="digits", help="as for train (default digits)")
    c.add_argument("--hidden", type=layer_widths, default=[256, 128], help="hidden widths (default 256,128)")
    c.add_argument("--activation", default="relu")
    c.add_argument("--dropout", type=float, default=0.1)
    c.add_argument("--epochs", type=positive_int, default=15, help="epochs per run (default 15)")
    c.add_argument("--batch-size", type=positive_int, default=64)
    c.add_argument("--lr", type=nonneg_float, default=None,
                   help="one learning rate for every run (default: 0.01 for the SGD family, 1e-3 otherwise)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--target-loss", type=nonneg_float, default=0.1,
                   help="the training loss whose steps the table counts (default 0.1)")
    c.add_argument("--plot", default=None, help="loss and accuracy curves of every run (PNG)")
    c.add_argument("--table", default=None, help="write the table here (Markdown)")
    c.add_argument("--metrics-json", default=None, help="every run's history and summary (JSON)")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    add_reduction_options(c, choice=False, fine_tune=False)
    c.set_defaults(run=compare_job)
