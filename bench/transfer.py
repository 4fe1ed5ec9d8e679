"""Import at volume into a running node: records/s, peak memory of the import and of the node, a second run.

    python -m bench.transfer [--records 1000000] [--format jsonl|csv|both] [--keep DIR]

Writes ``--records`` synthetic WlzIndicatie records to a file (JSON Lines and/or
CSV), starts a CIZ node as its own process on 127.0.0.1, and runs
``iwlz import`` against it as a separate process, twice per file: the first run
stores every record, the second must add no version (idempotent). Prints for
each run the records per second, the import process's and the node's peak
resident memory (VmHWM / ru_maxrss) and the versions in the register after it.
Target (issue "Speed at national scale"): >= 20,000 records/s; memory flat in
the file size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.data import indicaties, write_csv, write_jsonl
from bench.procs import compile_bytecode, status_kib
from node.home import NetworkDir, NodeHome


def _stored(home: NodeHome) -> tuple[int, int]:
    """(versions, bytes the database holds: its pages in use, the WAL's included)."""
    import sqlite3

    with closing(sqlite3.connect(f"file:{home.database_path}?mode=ro", uri=True)) as db, db:
        versions = db.execute("SELECT count(*) FROM records").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(versions), pages * db.execute("PRAGMA page_size").fetchone()[0]


def wait_until_signed(database: Path, seconds: float) -> bool:
    """Whether the node signed every version it imported within ``seconds`` (its background signer does, once
    the import has been quiet a while)."""
    import sqlite3

    deadline = time.monotonic() + seconds
    while True:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db, db:
            if db.execute("SELECT count(*) FROM records WHERE signature IS NULL AND signed IS NULL").fetchone()[0] == 0:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def _signed_bytes(home: NodeHome, records: int) -> int:
    """The database's bytes once the node has signed every version it imported (the signature is part of what a
    record costs on disk)."""
    wait_until_signed(home.database_path, min(600, 10 + records / 2000))
    return _stored(home)[1]


def _import(home: NodeHome, file: Path, fmt: str, rejects: Path) -> dict[str, Any]:
    out_path, err_path = rejects.with_suffix(".out"), rejects.with_suffix(".err")
    started = time.perf_counter()
    peak = 0
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "node", "import", str(home.path), "WlzIndicatie", str(file),
                                 "--format", fmt, "--rejects", str(rejects), "--quiet", "--json"], stdout=out, stderr=err)
        # VmHWM only grows: its last reading is the peak (ru_maxrss would count the forked parent's pages too).
        while proc.poll() is None:
            try:
                peak = max(peak, status_kib(proc.pid, "VmHWM"))
            except OSError:
                break
            time.sleep(0.2)
        proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"import failed ({proc.returncode}): {err_path.read_text()[-2000:]}")
    return {"seconds": round(seconds, 1), "summary": json.loads(out_path.read_text()), "import_peak_mib": round(peak / 1024, 1)}


def run(records: int, formats: list[str], keep: Path | None) -> list[dict[str, Any]]:
    compile_bytecode()
    root = keep or Path(tempfile.mkdtemp(prefix="iwlz-bench-transfer-"))
    results = []
    try:
        shutil.rmtree(root / "network", ignore_errors=True)
        net = NetworkDir.create(root / "network", "bench")
        for fmt in formats:
            file = root / f"indicaties.{fmt}"
            if not file.exists():
                writer = write_jsonl if fmt == "jsonl" else write_csv
                writer(file, indicaties(records))
            shutil.rmtree(root / f"ciz-{fmt}", ignore_errors=True)
            home = NodeHome.create(root / f"ciz-{fmt}", role="ciz", name="CIZ", identifiers={"kvk": "62253778"}, region=None)
            net.issue(home, now=int(time.time()), days=30)
            node = subprocess.Popen([sys.executable, "-m", "node", "run", str(home.path), "--quiet", "--no-mdns", "--workers", "1",
                                     "--gossip-interval", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                assert node.stdout is not None and node.stdout.readline().startswith("ready")
                for attempt in ("first", "second"):
                    result = _import(home, file, fmt, root / f"rejects-{fmt}-{attempt}.txt")
                    summary = result["summary"]
                    results.append({
                        "format": fmt, "run": attempt, "records": records, "seconds": result["seconds"],
                        "records_per_s": round(records / result["seconds"]),
                        "created": summary.get("created"), "updated": summary.get("updated"),
                        "unchanged": summary.get("unchanged"), "rejected": summary.get("rejected"),
                        "import_peak_mib": result["import_peak_mib"], "node_peak_mib": round(status_kib(node.pid, "VmHWM") / 1024, 1),
                        "versions": _stored(home)[0], "file_mib": round(file.stat().st_size / 2**20, 1),
                        "db_bytes_per_record": round(_signed_bytes(home, records) / records),
                    })
                    print(json.dumps(results[-1]), flush=True)
            finally:
                node.terminate()
                node.wait(timeout=60)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["jsonl", "csv", "both"], default="both")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (the data files are reused)")
    args = parser.parse_args(argv)
    formats = ["jsonl", "csv"] if args.format == "both" else [args.format]
    results = run(args.records, formats, args.keep)
    print(f"{'format':6} {'run':6} {'records/s':>10} {'import MiB':>10} {'node MiB':>9} {'versions':>9} {'B/record':>9}")
    for r in results:
        print(f"{r['format']:6} {r['run']:6} {r['records_per_s']:>10} {r['import_peak_mib']!s:>10} {r['node_peak_mib']:>9} "
              f"{r['versions']:>9} {r['db_bytes_per_record']:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
