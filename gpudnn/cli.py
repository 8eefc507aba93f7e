"""The `gpudnn` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .backend import BackendUnavailableError


class UsageError(Exception):
    """Bad arguments or data: reported as one line on stderr, exit code 2."""


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import report

    info = report()
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpudnn", description="Deep learning on NumPy/CuPy with fused Numba kernels.")
    parser.add_argument("--backend", choices=["auto", "numpy", "cupy", "cudasim"], default=None,
                        help="array backend (default: $GPUDNN_BACKEND or auto)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("info", help="backend chosen and why, device, library versions").set_defaults(run=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.backend:
            from .backend import set_backend

            set_backend(args.backend)
        return args.run(args)
    except (BackendUnavailableError, UsageError, ValueError, TypeError, OSError) as exc:
        print(f"gpudnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpudnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
