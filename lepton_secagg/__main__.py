"""``python -m lepton_secagg``: the command-line interface (see ``lepton_secagg.cli``)."""
from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
