"""The `gpudnn` command line (also `python -m gpudnn`).

Bad arguments or data end with one line on stderr and exit code 2, never a traceback
(set GPUDNN_DEBUG=1 to see the traceback instead). Under ``mpiexec -n N`` (N > 1) every rank joins
the MPI world before the command runs, and an error on any rank ends the whole job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import distributed
from ..backend import BackendUnavailableError, set_backend
from ..training import NonFiniteError
from .parser import build_parser
from .usage import UsageError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: sys.argv); returns the exit code."""
    args = vars(build_parser().parse_args(argv))
    backend, job = args.pop("backend"), args.pop("run")
    del args["command"]
    try:
        if backend:
            set_backend(backend)
        if distributed.launched_size() > 1:
            distributed.init()
        job(**args)
        return 0
    except (BackendUnavailableError, UsageError, ValueError, TypeError, OSError, NonFiniteError,
            RuntimeError) as exc:
        if os.environ.get("GPUDNN_DEBUG"):
            raise
        rank, size = distributed.rank_and_size()
        print(f"gpudnn: error{f' on rank {rank}' if size > 1 else ''}: {exc}", file=sys.stderr)
        distributed.abort(2)  # the other ranks may be waiting in a collective
        return 2
    except KeyboardInterrupt:
        print("gpudnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
