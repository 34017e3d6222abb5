"""`best-conformance serve` for a load run: the same command, its per-datagram exchange log off.

At load rates the exchange log (a line per datagram, at INFO) costs the reference more than serving does, and
would measure the log, not the SUT. The root logger is set to WARNING before `serve` configures logging (its
basicConfig then does nothing), so the banner, errors and the moment a dead fault killed it are still logged.
"""

from __future__ import annotations

import logging
import sys

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    from conformance.cli import main

    main(sys.argv[1:])
