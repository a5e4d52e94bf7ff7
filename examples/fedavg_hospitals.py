"""Three hospitals train one model with the seed API: ``Client(server_address).load_model / train / send_update``.

Each hospital's data is a CSV file with a ``label`` column (written here from
scikit-learn's breast-cancer data, split with label skew); the server runs
federated averaging with secure aggregation each round, federated
evaluation, the model registry and a signed audit log.  Standardisation
statistics come from one secure sum (``fl.demo.secure_feature_stats``).

    python examples/fedavg_hospitals.py            # 5 rounds
    python examples/fedavg_hospitals.py --quick    # 2 rounds
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer

from lepton_secagg.fl import Client, Server, build_model, verify_log
from lepton_secagg.fl.data import hospital_split, write_csv
from lepton_secagg.fl.demo import ARCHITECTURE, SHARES, secure_feature_stats


def hospital(address: str, name: str, train_csv: Path, val_csv: Path, rounds: int,
             report: dict[str, dict[str, int | None]]) -> None:
    client = Client(server_address=address, organisation=name)
    client.evaluate(data_path=val_csv)                      # federated evaluation of the initial model
    for _ in range(rounds):
        model = client.load_model("breast-cancer")          # the latest global version from the registry
        client.train(model, data_path=train_csv, epochs=2)  # local SGD on the CSV (label column "label")
        client.send_update(model)                           # the update and the weight, masked
        last = client.evaluate(data_path=val_csv)           # federated evaluation of the new version
    report[name] = {"client_id": client.client_id, "last_eval_version": last.version}


def main(rounds: int, workdir: Path) -> dict[str, object]:
    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    test = rng.permutation(len(y))[: len(y) // 4]
    pool = np.setdiff1d(np.arange(len(y)), test)
    csvs, arrays = [], []
    for h, idx in enumerate(hospital_split(y[pool], SHARES, seed=0)):
        idx = pool[idx]
        cut = int(len(idx) * 0.8)
        csvs.append((write_csv(workdir / f"hospital{h}_train.csv", X[idx[:cut]], y[idx[:cut]]),
                     write_csv(workdir / f"hospital{h}_val.csv", X[idx[cut:]], y[idx[cut:]])))
        arrays.append(X[idx[:cut]])
    mean, std = secure_feature_stats(arrays)
    torch.manual_seed(0)
    model = build_model(ARCHITECTURE)
    model.get_buffer("0.mean").copy_(torch.tensor(mean, dtype=torch.float32))  # the Standardize layer's statistics
    model.get_buffer("0.std").copy_(torch.tensor(std, dtype=torch.float32))

    server = Server("127.0.0.1", 0, model=model, name="breast-cancer", architecture=ARCHITECTURE, clients=3, rounds=rounds,
                    audit_log=workdir / "audit.jsonl", plot=workdir / "progress.png").start()
    print(f"server on {server.address}, audit key {server.public_key}")
    report: dict[str, dict[str, int | None]] = {}
    threads = [threading.Thread(target=hospital, args=(server.address, f"hospital-{'abc'[h]}", *csvs[h], rounds, report))
               for h in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = server.join()
    final = build_model(ARCHITECTURE)
    final.load_state_dict(result.model.state.to_state_dict())
    with torch.no_grad():
        accuracy = float((final(torch.tensor(X[test], dtype=torch.float32)).argmax(1).numpy() == y[test]).mean())
    for entry in result.history:
        print(f"round {entry['round']}: federated accuracy {entry['accuracy']:.3f}, loss {entry['loss']:.3f} "
              f"(version {entry['version']})")
    assert result.audit_log is not None  # the server was given audit_log=
    audit = verify_log(result.audit_log, key=result.public_key)
    print(f"registry: {[(v['version'], v['sha256'][:12], v['contributors']) for v in result.versions]}")
    print(f"held-out accuracy of version {result.model.version}: {accuracy:.3f}; audit log {audit.entries} entries verified")
    return {"ok": len(report) == 3 and audit.complete and accuracy > 0.85, "accuracy": accuracy, "rounds": rounds,
            "versions": len(result.versions), "audit_entries": audit.entries, "plot": result.plot,
            "audit_log": str(result.audit_log)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds (CI)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--workdir", default=None,
                    help="where to write the CSVs, the audit log and the plot (default: a new temporary directory, kept and printed)")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fedavg_hospitals-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = main(rounds, workdir)
    print(f"outputs (CSVs, audit.jsonl, progress.png) in {workdir}")
    print(json.dumps({**out, "workdir": str(workdir)}))
    raise SystemExit(0 if out["ok"] else 1)
