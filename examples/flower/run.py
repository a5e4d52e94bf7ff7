"""Run the example in Flower's simulation engine: ``.venv/bin/python examples/flower/run.py [--supernodes 5]``."""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flwr.simulation import run_simulation  # noqa: E402

from client_app import app as client_app  # noqa: E402
from server_app import app as server_app  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--supernodes", type=int, default=5)
    args = ap.parse_args()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=args.supernodes,
                   backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}})
