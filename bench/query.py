"""Query throughput of a real node against a bare signing server, and the store at scale.

    python -m bench.query http  [--seconds 10] [--inflight 64]
    python -m bench.query workers [--seconds 10] [--inflight 64] [--workers N]
    python -m bench.query size [--records 100000] [--seconds 10]
    python -m bench.query store [--records 1000000]

``http`` runs, in one process tree and one run, (a) a bare aiohttp handler
that only verifies one Ed25519 signature and signs its reply, and (b) a real
CIZ node answering QIR-0001-ZKi (indicatie by id) with policy, audit and
group commit; each server is pinned to core 0 and loaded by the same load
generator pinned to core 1 with N requests in flight. It prints both rates,
p50/p99 latency and the ratio b/a.

``store`` bulk-loads signed record versions into a fresh store (records/s),
then measures query-by-BSN at the store (awaited one by one) on that register.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import data
from bench.procs import compile_bytecode, status_kib
from bench.transfer import wait_until_signed

SERVER_CORE, LOAD_CORE = 0, 1
IND0 = "31835d1d-3933-4ffe-9f57-8985f41fae4a"


def _query(record_id: str) -> Any:
    from protocol import Query

    return Query(template="QIR-0001-ZKi", params={"wlzIndicatieID": record_id, "uzovi": "5151"}, evidence=(),
                 history=False)


def _pin(core: int) -> None:
    try:
        os.sched_setaffinity(0, {core % os.cpu_count()})  # type: ignore[operator]
    except (AttributeError, OSError):
        pass


# -- (a) the bare server ----------------------------------------------------


def _bare_server(port_queue: Any, event_loop: str = "asyncio") -> None:
    _pin(SERVER_CORE)
    import nacl.signing
    from aiohttp import web

    signing_key = nacl.signing.SigningKey(b"\x02" * 32)
    peer_key = nacl.signing.SigningKey(b"\x03" * 32).verify_key

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        peer_key.verify(body)
        return web.Response(body=signing_key.sign(hashlib.sha256(body).digest()))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    if event_loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
            loop_runner.run(main())
    else:
        asyncio.run(main())


# -- the load generator -------------------------------------------------------


async def _load(url: str, bodies: list[bytes], inflight: int, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    index = 0
    deadline = 0.0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal index, errors
        while time.perf_counter() < deadline and index < len(bodies):
            body = bodies[index]
            index += 1
            start = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=connector) as http:
        deadline = time.perf_counter() + min(1.0, seconds / 5)  # warm up: connections, caches
        await asyncio.gather(*(worker(http) for _ in range(inflight)))
        latencies.clear()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker(http) for _ in range(inflight)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rate": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000, "errors": errors, "n": len(latencies)}


def _load_process(kind: str, target: str, setup: dict[str, Any], inflight: int, seconds: float, out: Any) -> None:
    _pin(LOAD_CORE)
    count = int(setup["expected_rate"] * (seconds + 2) * 1.5) + 2000
    if kind == "bare":
        import nacl.signing

        key = nacl.signing.SigningKey(b"\x03" * 32)
        bodies = [key.sign(os.urandom(16) + b"x" * 820) for _ in range(count)]
        headers: dict[str, str] = {}
    else:
        from node.home import NodeHome
        from protocol import MEDIA_TYPE, Endpoint

        home = NodeHome(Path(setup["requester"]))
        endpoint = Endpoint(home.identity(), home.certificate(), home.trust_store())
        ids = setup.get("ids", [IND0])
        now = int(time.time())
        bodies = [endpoint.send(_query(ids[i % len(ids)]), to=setup["did"], now=now, lifetime=300).data
                  for i in range(count)]
        headers = {"Content-Type": MEDIA_TYPE}
    out.put(asyncio.run(_load(target, bodies, inflight, seconds, headers)))


def _measure(kind: str, target: str, setup: dict[str, Any], inflight: int, seconds: float) -> dict[str, float]:
    queue: Any = mp.Queue()
    proc = mp.Process(target=_load_process, args=(kind, target, setup, inflight, seconds, queue))
    proc.start()
    result = queue.get(timeout=600)
    proc.join()
    return result  # type: ignore[no-any-return]


def _network(tmp: Path) -> tuple[Path, Path]:
    from node.home import NetworkDir, NodeHome

    net = NetworkDir.create(tmp / "net", "bench")
    ciz = NodeHome.create(tmp / "ciz", role="ciz", name="CIZ", identifiers={"kvk": "62253778"}, region=None)
    zk = NodeHome.create(tmp / "zk", role="zorgkantoor", name="Zorgkantoor Noord", identifiers={"uzovi": "5151"}, region=None)
    for home in (ciz, zk):
        net.issue(home, now=int(time.time()), days=2)
    return ciz.path, zk.path


def bench_http(seconds: float, inflight: int, event_loop: str = "asyncio") -> dict[str, float]:
    """Both servers on ``event_loop`` (asyncio or uvloop)."""
    port_queue: Any = mp.Queue()
    bare = mp.Process(target=_bare_server, args=(port_queue, event_loop), daemon=True)
    bare.start()
    bare_url = f"http://127.0.0.1:{port_queue.get(timeout=30)}/"
    a = _measure("bare", bare_url, {"expected_rate": 8000}, inflight, seconds)
    bare.terminate()
    bare.join()

    b, audit = _node_run(inflight, seconds, event_loop, workers=1, pin=True)
    print(f"{inflight} requests in flight, {seconds:.0f} s each, server on core {SERVER_CORE} ({event_loop}), "
          f"load on core {LOAD_CORE}")
    print(f"{'server':58} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for name, r in (("(a) bare aiohttp: verify one signature, sign the reply", a),
                    ("(b) iwlz node: QIR-0001-ZKi with policy + audit", b)):
        print(f"{name:58} {r['rate']:8,.0f} {r['p50']:7.2f} {r['p99']:7.2f} {r['errors']:6.0f}")
    print(f"ratio b/a: {b['rate'] / a['rate']:.2f}   (target >= 0.6 with p99 <= 25 ms)")
    print(f"audit after the run: {audit}")
    return {"bare_rate": a["rate"], "node_rate": b["rate"], "ratio": b["rate"] / a["rate"], "node_p50_ms": b["p50"],
            "node_p99_ms": b["p99"], "errors": b["errors"]}


_WRK_SCRIPT = """
local bodies, i = {}, 0
for line in io.lines(os.getenv("IWLZ_BODIES")) do
  bodies[#bodies + 1] = (line:gsub("..", function(cc) return string.char(tonumber(cc, 16)) end))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cose"
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("IWLZ %d %d %d %.3f %.3f\\n", summary.requests, summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _wrk(url: str, setup: dict[str, Any], inflight: int, seconds: float) -> dict[str, float]:
    """The load from wrk (C, a few microseconds per request), pinned to the load core: the node's processes get
    the rest of the machine. Each request is its own signed query (a body sent twice would be a replay)."""
    from node.home import NodeHome
    from protocol import Endpoint

    home = NodeHome(Path(setup["requester"]))
    endpoint = Endpoint(home.identity(), home.certificate(), home.trust_store())
    ids = setup.get("ids", [IND0])
    count = int(setup["expected_rate"] * (seconds + 2))
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="iwlz-wrk-") as tmp:
        bodies, script = Path(tmp) / "bodies.hex", Path(tmp) / "load.lua"
        with bodies.open("w") as out:
            for i in range(count):
                out.write(endpoint.send(_query(ids[i % len(ids)]), to=setup["did"], now=now, lifetime=300).data.hex() + "\n")
        script.write_text(_WRK_SCRIPT)
        run = subprocess.run(["taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{inflight}", f"-d{seconds:.0f}s",
                              "--latency", "-s", str(script), url], capture_output=True, text=True,
                             env={**os.environ, "IWLZ_BODIES": str(bodies)})
    line = next(line for line in run.stdout.splitlines() if line.startswith("IWLZ "))
    requests, errors, duration, p50, p99 = line.split()[1:]
    if int(requests) > count:
        raise RuntimeError("wrk sent more requests than there were signed bodies: raise expected_rate")
    return {"rate": int(requests) / (int(duration) / 1e6), "p50": float(p50), "p99": float(p99), "errors": int(errors),
            "n": int(requests)}


@contextlib.contextmanager
def _running_node(home: Path, event_loop: str, *, workers: int, pin: bool) -> Iterator[str]:
    """``iwlz run`` on ``home`` as its own process (pinned to the server core when ``pin``); yields its URL."""
    compile_bytecode()
    command = [sys.executable, "-m", "node", "run", str(home), "--quiet", "--no-mdns", "--event-loop", event_loop,
               "--workers", str(workers)]
    node = subprocess.Popen((["taskset", "-c", str(SERVER_CORE)] if pin else []) + command, stdout=subprocess.PIPE,
                            text=True)
    try:
        yield (node.stdout.readline().split() if node.stdout else ["", ""])[1]
    finally:
        node.terminate()
        node.wait(timeout=60)
        if node.stdout:
            node.stdout.close()


def _load_node(url: str, setup: dict[str, Any], inflight: int, seconds: float, load: str) -> dict[str, float]:
    target = url + "/iwlz/v1/messages"
    return _wrk(target, setup, inflight, seconds) if load == "wrk" else _measure("node", target, setup, inflight, seconds)


def _node_run(inflight: int, seconds: float, event_loop: str, *, workers: int, pin: bool,
              load: str = "python") -> tuple[dict[str, float], str]:
    """A fresh CIZ node holding one indicatie, loaded with QIR-0001-ZKi; the load and the audit check after it."""
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-bench-"))
    try:
        ciz, zk = _network(tmp)
        with _running_node(ciz, event_loop, workers=workers, pin=pin) as url:
            sample = json.loads((Path(__file__).resolve().parents[1] / "node" / "cli" / "sample.json").read_text())
            subprocess.run([sys.executable, "-m", "node", "record", "put", str(ciz), "WlzIndicatie", "-"],
                           input=json.dumps(sample["wlzIndicaties"][0]), text=True, check=True, capture_output=True)
            did = json.loads((ciz / "run.json").read_text())["did"]
            result = _load_node(url, {"expected_rate": 8000 * workers, "requester": str(zk), "did": did}, inflight,
                                seconds, load)
            audit = subprocess.run([sys.executable, "-m", "node", "audit", str(ciz), "--verify"], capture_output=True,
                                   text=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result, audit.stdout.strip()


def _load_kind() -> str:
    return "wrk" if shutil.which("wrk") else "python"  # apt-get install wrk: the Python load takes a core itself


def bench_register_size(records: int, seconds: float, inflight: int = 64, event_loop: str = "uvloop") -> dict[str, float]:
    """QIR-0001-ZKi over HTTP against a register of ``records`` indicaties (imported with iwlz import, then all
    signed by the node's background signer), each query for a record drawn at random: one process, pinned to
    core 0, the load on core 1 (wrk when installed)."""
    from bench.data import indicaties, write_jsonl

    tmp = Path(tempfile.mkdtemp(prefix="iwlz-size-"))
    load = _load_kind()
    try:
        ciz, zk = _network(tmp)
        file = tmp / "indicaties.jsonl"
        write_jsonl(file, indicaties(records))
        rng = random.Random(11)
        ids = [r["wlzIndicatieID"] for r in indicaties(records) if rng.random() < 20_000 / records]
        rng.shuffle(ids)
        with _running_node(ciz, event_loop, workers=1, pin=True) as url:
            subprocess.run([sys.executable, "-m", "node", "import", str(ciz), "WlzIndicatie", str(file), "--format",
                            "jsonl", "--quiet", "--json"], check=True, capture_output=True)
            # Imported versions are signed by the node's background signer; measure after it is done.
            if not wait_until_signed(ciz / "node.sqlite3", records * 0.001 + 120):
                raise RuntimeError("the node did not sign its imported versions in time")
            # Measured: in the first seconds after an import and its signing, the node still writes them back
            # (p99 255 ms at 100,000 without this pause, 53 ms with it); this measures the register, not that.
            time.sleep(min(60.0, 5 + records / 5_000))
            run = json.loads((ciz / "run.json").read_text())
            result = _load_node(url, {"expected_rate": 8000, "requester": str(zk), "did": run["did"], "ids": ids}, inflight,
                                seconds, load)
            # What the node holds after the import, its signing and the queries: memory must not follow the register.
            rss, peak = status_kib(run["pid"], "VmRSS") / 1024, status_kib(run["pid"], "VmHWM") / 1024
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"QIR-0001-ZKi on a register of {records:,} indicaties, {len(ids):,} of them asked for at random, "
          f"{inflight} in flight ({load}): {result['rate']:,.0f} req/s, p50 {result['p50']:.2f} ms, "
          f"p99 {result['p99']:.2f} ms, {result['errors']:.0f} errors; node RSS after {result['rate'] * seconds:,.0f} "
          f"queries {rss:.0f} MiB (peak {peak:.0f} MiB)")
    return {"rate": result["rate"], "p50_ms": result["p50"], "p99_ms": result["p99"], "errors": result["errors"],
            "queries": result["rate"] * seconds, "rss_mib": rss, "peak_mib": peak}


def bench_workers(seconds: float, inflight: int, event_loop: str = "asyncio", workers: int = 0) -> dict[str, float]:
    """The same node with one worker and with one per core (``workers``), in one run, neither pinned; the load
    generator keeps its core, so on a machine of 2 cores the node has all of one and what the load leaves of
    the other."""
    workers = workers or os.cpu_count() or 1
    load = _load_kind()
    one, audit_one = _node_run(inflight, seconds, event_loop, workers=1, pin=False, load=load)
    many, audit_many = _node_run(inflight, seconds, event_loop, workers=workers, pin=False, load=load)
    print(f"{inflight} requests in flight, {seconds:.0f} s each ({event_loop}), load ({load}) on core {LOAD_CORE}")
    print(f"{'node':30} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for name, r in (("1 worker", one), (f"{workers} workers", many)):
        print(f"{name:30} {r['rate']:8,.0f} {r['p50']:7.2f} {r['p99']:7.2f} {r['errors']:6.0f}")
    print(f"ratio {workers} workers / 1 worker: {many['rate'] / one['rate']:.2f}")
    print(f"audit after the runs: {audit_one} / {audit_many}")
    return {"workers": workers, "one_rate": one["rate"], "many_rate": many["rate"], "ratio": many["rate"] / one["rate"],
            "many_p99_ms": many["p99"], "errors": one["errors"] + many["errors"],
            "chains_intact": float("intact" in audit_one and "intact" in audit_many)}


# -- the store ----------------------------------------------------------------


def _indicatie(rng: random.Random, template: dict[str, Any]) -> dict[str, Any]:
    return data.indicatie(rng, template)


async def bench_store(records: int) -> dict[str, float]:
    from keys import Identity, issue_certificate
    from node.store import Actor, AuditLog, Registers, Store

    rng = random.Random(7)
    template = json.loads((Path(__file__).resolve().parents[1] / "node" / "cli" / "sample.json").read_text())["wlzIndicaties"][0]
    root, me = Identity.generate(), Identity.generate()
    cert = issue_certificate(root, subject=me.did, organisation="CIZ", role="ciz", identifiers={"kvk": "62253778"},
                             not_before=0, expires=2**40, issued_at=0)
    tmp = Path(tempfile.mkdtemp(prefix="iwlz-store-"))
    try:
        async with Store(tmp / "bench.sqlite3") as store:
            audit = AuditLog(store, me)
            registers = Registers(store, me, cert, "ciz", audit)
            await registers.load()
            actor = Actor(me.did, "ciz", "CIZ")
            batch, loaded, bsns = 5000, 0, []
            started = time.perf_counter()
            while loaded < records:
                chunk = [_indicatie(rng, template) for _ in range(min(batch, records - loaded))]
                bsns.extend(r["bsn"] for r in chunk[::50])
                await registers.load_many("WlzIndicatie", chunk, actor=actor, now=int(time.time()))
                loaded += len(chunk)
            load_rate = loaded / (time.perf_counter() - started)
            sample = rng.sample(bsns, min(2000, len(bsns)))
            timings = []
            for bsn in sample:
                t = time.perf_counter()
                found = await registers.find("bsn", bsn, kinds=("WlzIndicatie",))
                timings.append(time.perf_counter() - t)
                assert found and found[0].data and found[0].data["bsn"] == bsn
            timings.sort()
            size = (tmp / "bench.sqlite3").stat().st_size + (tmp / "bench.sqlite3-wal").stat().st_size
        print(f"bulk load of {loaded:,} signed WlzIndicatie versions: {load_rate:,.0f} records/s  (target >= 20,000)")
        label = "query by BSN at the store"
        print(f"{label} on {loaded:,} records, {len(sample)} queries awaited one by one: "
              f"p50 {timings[len(timings) // 2] * 1000:.3f} ms, p99 {timings[int(len(timings) * 0.99)] * 1000:.3f} ms"
              f"  (target p50 <= 0.5 ms)")
        print(f"store size: {size / 1e6:,.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"load_rate": load_rate, "query_p50_ms": timings[len(timings) // 2] * 1000,
            "query_p99_ms": timings[int(len(timings) * 0.99)] * 1000, "bytes_per_record": size / loaded}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("http")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument("--event-loop", choices=["asyncio", "uvloop"], default="asyncio")
    p = sub.add_parser("workers")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="default: one per core")
    p.add_argument("--event-loop", choices=["asyncio", "uvloop"], default="asyncio")
    p = sub.add_parser("size")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=10)
    p = sub.add_parser("store")
    p.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    if args.what == "http":
        bench_http(args.seconds, args.inflight, args.event_loop)
    elif args.what == "size":
        bench_register_size(args.records, args.seconds)
    elif args.what == "workers":
        bench_workers(args.seconds, args.inflight, args.event_loop, args.workers)
    else:
        asyncio.run(bench_store(args.records))


if __name__ == "__main__":
    main()
