"""Run the deliberate bugs of mutants.py one at a time against a copy of a bench tree and report
which ones the relevant tests catch (a failing test) and which survive.

    .venv/bin/python tests/mutation/run.py [--tree DIR] [--only m01,m02] [--out FILE]

Each mutant's targets are its own `tests` plus, where present, the tests of `EXTRA` that exist
in the tree (tests written later for the same family). Not a pytest module: it runs pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import EXTRA, MUTANTS  # noqa: E402


def _exists(tree: Path, target: str) -> bool:
    path, _, name = target.partition("::")
    if not (tree / path).is_file():
        return False
    return not name or f"def {name.split('[')[0]}(" in (tree / path).read_text()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parents[2]))
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mutants-")) / "tree"
    shutil.copytree(args.tree, work, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache"))
    env = {**os.environ, "PYTHONPATH": str(work), "TQDM_DISABLE": "1"}
    chosen = [m for m in MUTANTS if not args.only or m["id"] in args.only.split(",")]
    results = []
    for m in chosen:
        path = work / m["file"]
        original = path.read_text()
        if original.count(m["old"]) != 1:
            results.append({"id": m["id"], "status": "not applicable"})
            print(m["id"], "not applicable (the mutated line is not in this tree)", flush=True)
            continue
        targets = [t for t in m["tests"] + EXTRA.get(m["id"], []) if _exists(work, t)]
        path.write_text(original.replace(m["old"], m["new"], 1))
        started = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *targets], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=600)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            path.write_text(original)
        status = {0: "survived", 1: "caught", -1: "timeout"}.get(code, f"error {code}")
        results.append({"id": m["id"], "status": status, "targets": len(targets), "seconds": round(time.perf_counter() - started, 1)})
        print(m["id"], status, f"{len(targets)} targets", f"{time.perf_counter() - started:.0f} s", m["what"][:80], flush=True)
    caught = sum(r["status"] == "caught" for r in results)
    print(f"caught {caught} of {len(results)}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    shutil.rmtree(work.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
