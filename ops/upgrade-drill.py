#!/usr/bin/env python3
"""Rolling-upgrade drill: a two-node Quire cluster goes from an OLD binary to a NEW one under
write load, on real PostgreSQL and real NATS, and loses or duplicates nothing it acknowledged.

What it does, in order:

 1. Creates a fresh database (``quire_drill_<unix time>_<pid>``) and a unique cluster name, starts
    nodes n1 and n2 with OLD and waits until the cluster has formed: both nodes live, each holding
    partitions, no unowned partition, every projection and worker owned (the same test as
    ``wait_until_formed`` in tests/common/cluster.rs). Formed is not balanced: a node that
    rejoins gets its share of partitions back one at a time after that, so the timeline shows
    each node's partition count when the cluster forms and when the next step begins.
 2. Creates ``--books`` books through n1.
 3. Starts ``--writers`` writer threads. Writer i owns books i, i+W, ... and renames them in turn to
    "w{i}-{seq}", one rename at a time, alternating between the nodes. Each rename carries an
    ``Idempotency-Key`` and is retried with the SAME key after any non-2xx answer or transport
    error until a node acknowledges it (2xx).
 4. After ``--settle`` seconds: SIGTERM n1, wait for it to drain and exit, restart it with NEW on
    the same data directory, wait until the cluster has formed again. The read-model migration
    version (``max(version)`` of ``rm_migrations``) is read before and after.
 5. ``--settle`` seconds later: the same for n2.
 6. Rollback probe: ``--settle`` seconds later n2 goes back to OLD on the migrated database (an
    older binary must tolerate the newer schema), and the cluster must form again. After another
    ``--settle`` seconds the load stops; each writer finishes the rename it has in flight.
 7. Verifies:
      * every acknowledged title of each book appears exactly once, in acknowledgement order, as a
        rename event (``BookUpdated`` with a title) in that book's stream: nothing acknowledged was
        lost, nothing was applied twice, nothing unacknowledged was applied;
      * each book's last rename event carries its last acknowledged title;
      * ``GET /books/{id}`` on both nodes shows that title within 30 s (the read models caught up);
      * ``GET /status`` answers 200 on both nodes, and every SIGTERMed node exited 0.
    and prints a report (to stdout; progress goes to stderr): acknowledged renames and their rate,
    non-2xx answers by status, transport errors by kind, per-step durations (stop, start,
    re-form), the longest gap between two acknowledgements of each writer, migration versions, and
    PASS or FAIL with the reasons. The exit status is 0 on PASS, 1 on FAIL, 2 when the drill could
    not run at all (bad arguments, services unreachable).
 8. Always cleans up: stops every node (SIGTERM, then SIGKILL), drops the database and deletes the
    cluster's NATS lease bucket, and removes the run's temporary directory (node logs included)
    unless ``--keep`` is given or the drill failed, in which case the directory is kept and named.

Requirements: PostgreSQL reachable with trust auth (``psql`` on the PATH), NATS with JetStream,
Python 3.11 (standard library only). Run from anywhere:

    python3 ops/upgrade-drill.py --old path/to/old/quire --new path/to/new/quire \\
        [--books 12] [--writers 4] [--settle 5] [--keep]

The defaults expect PostgreSQL on 127.0.0.1:5432 (user postgres) and NATS on
nats://127.0.0.1:4222; see ``--help`` to point elsewhere.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

# --- Fixed parameters of the drill ----------------------------------------------------------------

ADMIN_USER = "admin"
#: How long a node may take to print its listening line (migrations included).
START_TIMEOUT_S = 60.0
#: How long a node may take to drain and exit after SIGTERM before it is SIGKILLed.
STOP_TIMEOUT_S = 30.0
#: How long the cluster may take to form (the tests' wait_until_formed allows the same).
FORM_TIMEOUT_S = 90.0
#: How long the read models of both nodes may take to show the last titles.
CATCH_UP_TIMEOUT_S = 30.0
#: How long one HTTP request may take (a node re-sends an unowned command for 10 s, then 503).
REQUEST_TIMEOUT_S = 30.0
#: A rename not acknowledged within this long counts as a failure (writes were unavailable).
RENAME_DEADLINE_S = 120.0
#: Pause after a failed attempt before retrying on the other node.
RETRY_PAUSE_S = 0.1
#: The workers one of the nodes must hold for the cluster to count as formed (as in the tests).
EXPECTED_WORKERS = ["recs-trainer", "scheduler", "summaries"]
#: The event that records a rename: a book update whose payload carries the new title.
RENAME_EVENT = "BookUpdated"
NODE_IDS = ("n1", "n2")


class DrillError(Exception):
    """A step of the drill could not be completed; the drill fails with this reason."""


def log(message: str) -> None:
    """Progress, on stderr so that stdout carries only the report."""
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- HTTP -----------------------------------------------------------------------------------------


class TransportError(Exception):
    """A request got no HTTP answer; `kind` says why (connection refused, reset, timeout, ...)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def transport_kind(error: BaseException) -> str:
    """A short, stable name for a transport failure, for counting."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, http.client.RemoteDisconnected):
        return "closed without answer"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(error, BrokenPipeError):
        return "broken pipe"
    return type(error).__name__


def http_json(method: str, url: str, body: dict | None = None, headers: dict | None = None,
              timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, object]:
    """One request; returns (status, parsed JSON body or None). Raises TransportError when no
    HTTP answer came back (non-2xx answers are returned, not raised)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _parse_json(response.read())
    except urllib.error.HTTPError as error:
        try:
            payload = error.read()
        except Exception:  # the body of an error answer is only informative
            payload = b""
        return error.code, _parse_json(payload)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise TransportError(transport_kind(error), str(error)) from error


def _parse_json(payload: bytes) -> object:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None


# --- The run: services, database, nodes -----------------------------------------------------------


@dataclass
class StepResult:
    """One node replacement (stop, start, re-form) and what it took."""

    name: str
    node: str
    began: float = 0.0          # drill seconds when SIGTERM was sent
    ended: float = 0.0          # drill seconds when the cluster had formed again
    stop_s: float = 0.0         # SIGTERM until the process exited
    start_s: float = 0.0        # spawn until the listening line
    reform_s: float = 0.0       # listening line until formed
    exit_code: int | None = None
    killed: bool = False        # had to be SIGKILLed after STOP_TIMEOUT_S
    error: str | None = None


class Node:
    """One `quire serve` process, restartable on the same data directory."""

    def __init__(self, run: "Run", node_id: str):
        self.run = run
        self.id = node_id
        self.data_dir = os.path.join(run.tmp, node_id)
        self.log_path = os.path.join(run.tmp, f"{node_id}.log")
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None       # read by the writer threads; replaced on restart
        self.binary_label: str | None = None
        self.spawned_ms = 0               # wall-clock ms of the last spawn (to spot a fresh node)
        os.makedirs(self.data_dir, exist_ok=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, binary: str, label: str) -> float:
        """Starts the node with `binary`; returns the seconds until its listening line."""
        args = [binary, "serve", "--listen", "127.0.0.1:0",
                "--database-url", self.run.database_url,
                "--nats-url", self.run.nats_url,
                "--cluster", self.run.cluster,
                "--node-id", self.id,
                "--data-dir", self.data_dir]
        with open(self.log_path, "a", encoding="utf-8") as marker:
            marker.write(f"\n===== drill: starting {self.id} with {label} ({binary}) at "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
        log_file = open(self.log_path, "ab")
        began = time.monotonic()
        self.spawned_ms = int(time.time() * 1000)
        try:
            proc = subprocess.Popen(args, env=self.run.node_env, cwd=self.run.tmp,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=log_file, start_new_session=True)
        finally:
            log_file.close()  # the child holds its own descriptor
        self.proc = proc
        self.binary_label = label
        first_line: queue.Queue[str | None] = queue.Queue()

        def drain() -> None:
            # Hands over the first line, then keeps reading so the node never blocks on stdout.
            first = True
            for raw in proc.stdout:
                if first:
                    first_line.put(raw.decode(errors="replace").strip())
                    first = False
            if first:
                first_line.put(None)

        threading.Thread(target=drain, name=f"stdout-{self.id}", daemon=True).start()
        try:
            line = first_line.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            line = None
        prefix = "quire listening on "
        if not line or not line.startswith(prefix):
            code = proc.poll()
            if line is None and code is None:
                try:   # stdout closed: the exit status follows at once
                    code = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            if line is None and code is not None:
                why = f"exited with status {code} before printing its listening line"
            else:
                why = (f"printed no listening line within {START_TIMEOUT_S:.0f} s (first line "
                       f"{line!r}, exit status {code})")
            raise DrillError(f"{self.id} ({label}) {why}; see {self.log_path}")
        self.url = line[len(prefix):].strip().rstrip("/")
        return time.monotonic() - began

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> tuple[int | None, float, bool]:
        """SIGTERM, then wait; SIGKILL after `timeout`. Returns (exit code, seconds, killed)."""
        proc = self.proc
        if proc is None:
            return None, 0.0, False
        began = time.monotonic()
        killed = False
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
                proc.kill()
                proc.wait()
        return proc.returncode, time.monotonic() - began, killed


class Run:
    """Everything one drill run owns: temp dir, database, cluster name, nodes, secrets."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.old = os.path.abspath(args.old)
        self.new = os.path.abspath(args.new)
        self.t0 = time.monotonic()
        stamp = int(time.time())
        self.tmp = tempfile.mkdtemp(prefix=f"quire-drill-{stamp}-")
        self.db_name = f"quire_drill_{stamp}_{os.getpid()}"
        self.cluster = f"drill{stamp}{secrets.token_hex(3)}"
        self.nats_url = args.nats_url
        self.database_url = (f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/"
                             f"{self.db_name}")
        self.admin_password = secrets.token_urlsafe(18)     # 24 characters
        token_secret = secrets.token_hex(32)                 # 64 characters, shared by both nodes
        self.auth = "Basic " + base64.b64encode(
            f"{ADMIN_USER}:{self.admin_password}".encode()).decode()
        # A clean environment: no QUIRE_* of the caller (unknown keys are refused), no RUST_LOG
        # (the nodes log at their default level into their log files).
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("QUIRE_") and k != "RUST_LOG"}
        self.tool_env = dict(env)
        env.update({
            "QUIRE_ADMIN_USER": ADMIN_USER,
            "QUIRE_ADMIN_PASSWORD": self.admin_password,
            "QUIRE_API__TOKEN_SECRET": token_secret,
            "QUIRE_API__RATE_LIMIT_PER_SECOND": "0",
        })
        self.node_env = env
        self.cli_dir = os.path.join(self.tmp, "cli")   # data dir of the operator tools
        os.makedirs(self.cli_dir, exist_ok=True)
        self.nodes = {node_id: Node(self, node_id) for node_id in NODE_IDS}
        # Which binary runs `cluster status`: one matching the schema, the other as a fallback.
        self.tool_bins = [self.old, self.new]
        self.tool_fallbacks: list[str] = []
        self.timeline: list[tuple[float, str]] = []
        self.db_created = False

    def now(self) -> float:
        """Seconds since the drill began."""
        return time.monotonic() - self.t0

    def mark(self, label: str) -> None:
        self.timeline.append((self.now(), label))
        log(label)

    # -- PostgreSQL (psql) --

    def psql(self, sql: str, database: str | None = None) -> str:
        a = self.args
        result = subprocess.run(
            ["psql", "-h", a.pg_host, "-p", str(a.pg_port), "-U", a.pg_user,
             "-d", database or self.db_name, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-c", sql],
            capture_output=True, text=True, timeout=60,
            env={**self.tool_env, "PGCONNECT_TIMEOUT": "5"})
        if result.returncode != 0:
            raise DrillError(f"psql {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self) -> None:
        self.psql(f'CREATE DATABASE "{self.db_name}"', database="postgres")
        self.db_created = True

    def drop_database(self) -> str:
        self.psql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)', database="postgres")
        return "dropped"

    def max_version(self, table: str) -> int | None:
        """max(version) of a migrations table, or None if it cannot be read."""
        try:
            out = self.psql(f"SELECT coalesce(max(version), 0) FROM {table}")
            return int(out)
        except (DrillError, ValueError):
            return None

    def migrations_after(self, version: int) -> list[str]:
        try:
            out = self.psql("SELECT version || ' ' || description FROM rm_migrations "
                            f"WHERE version > {int(version)} ORDER BY version")
        except DrillError:
            return []
        return [line for line in out.splitlines() if line.strip()]

    # -- the quire operator tools --

    def tool(self, binary: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args, "--database-url", self.database_url,
                               "--data-dir", self.cli_dir],
                              capture_output=True, text=True, timeout=timeout,
                              env=self.tool_env, cwd=self.tmp)

    def cluster_status(self) -> dict:
        """`quire cluster status --json`, with the binary that matches the schema, or the other."""
        errors = []
        for index, binary in enumerate(self.tool_bins):
            try:
                result = self.tool(binary, "cluster", "status", "--json",
                                   "--nats-url", self.nats_url, "--cluster", self.cluster,
                                   timeout=30)
            except subprocess.TimeoutExpired:
                errors.append(f"{os.path.basename(binary)}: timed out")
                continue
            if result.returncode == 0:
                try:
                    status = json.loads(result.stdout)
                except ValueError as error:
                    errors.append(f"{os.path.basename(binary)}: bad JSON ({error})")
                    continue
                if index > 0:
                    note = (f"`cluster status` failed with {self.tool_bins[0]} and needed "
                            f"{binary}: {errors[-1] if errors else ''}")
                    if note not in self.tool_fallbacks:
                        self.tool_fallbacks.append(note)
                return status
            errors.append(f"{os.path.basename(binary)}: {result.stderr.strip()[-300:]}")
        raise DrillError("cluster status failed: " + " | ".join(errors))

    def formed(self, status: dict, fresh: dict[str, int]) -> str | None:
        """None when the cluster counts as formed, else what is still missing. `fresh` maps a
        node id to the earliest start (ms) its registration must show (a restarted node)."""
        nodes = status.get("nodes") or []
        ids = sorted(n.get("node_id") for n in nodes)
        if ids != sorted(NODE_IDS):
            return f"live nodes {ids}"
        for n in nodes:
            if not n.get("partitions"):
                return f"{n['node_id']} holds no partition"
            if n["node_id"] in fresh and int(n.get("started_at") or 0) < fresh[n["node_id"]]:
                return f"{n['node_id']} still registered by its previous process"
        if status.get("unowned_partitions") != []:
            return f"unowned partitions {status.get('unowned_partitions')}"
        projections = status.get("projections") or []
        unowned = [p.get("name") for p in projections if not isinstance(p.get("owner"), str)]
        if not projections or unowned:
            return f"projections without owner {unowned}"
        workers = status.get("workers") or []
        names = sorted(w.get("name") for w in workers)
        if names != EXPECTED_WORKERS or not all(isinstance(w.get("owner"), str) for w in workers):
            return f"workers {names}"
        return None

    @staticmethod
    def describe(status: dict) -> str:
        """Each node's version and partition count, e.g. `n1 0.1.0 16p, n2 0.1.0 16p`."""
        return ", ".join(f"{n.get('node_id')} {n.get('version')} {len(n.get('partitions') or [])}p"
                         for n in sorted(status.get("nodes") or [],
                                         key=lambda n: str(n.get("node_id"))))

    def wait_until_formed(self, fresh: dict[str, int] | None = None) -> dict:
        fresh = fresh or {}
        deadline = time.monotonic() + FORM_TIMEOUT_S
        last = "no status yet"
        while True:
            for node in self.nodes.values():
                if node.proc is not None and not node.alive():
                    raise DrillError(f"{node.id} exited ({node.proc.returncode}) while the cluster "
                                     f"was forming; see {node.log_path}")
            try:
                status = self.cluster_status()
                missing = self.formed(status, fresh)
                if missing is None:
                    return status
                last = missing
            except DrillError as error:
                last = str(error)
            if time.monotonic() >= deadline:
                raise DrillError(f"the cluster did not form within {FORM_TIMEOUT_S:.0f} s: {last}")
            time.sleep(0.5)

    # -- the nodes' API --

    def admin_headers(self, **extra: str) -> dict:
        return {"Authorization": self.auth, **extra}

    def create_book(self, node: Node, index: int) -> str:
        """POST /books through `node`, retried with one Idempotency-Key until it answers 2xx."""
        key = str(uuid.uuid4())
        body = {"title": f"drill book {index}", "author": "Mary Shelley", "genre": "gothic",
                "year_published": 1818}
        deadline = time.monotonic() + RENAME_DEADLINE_S
        last = ""
        while time.monotonic() < deadline:
            try:
                status, answer = http_json("POST", f"{node.url}/books", body,
                                           self.admin_headers(**{"Idempotency-Key": key}))
                if 200 <= status < 300 and isinstance(answer, dict) and answer.get("id"):
                    return answer["id"]
                last = f"{status} {answer}"
            except TransportError as error:
                last = str(error)
            time.sleep(0.5)
        raise DrillError(f"could not create book {index} through {node.id}: {last}")


# --- Load -----------------------------------------------------------------------------------------


@dataclass
class WriterStats:
    acked: dict[str, list[str]] = field(default_factory=dict)    # book -> titles, in ack order
    unacked: dict[str, list[str]] = field(default_factory=dict)  # gave up after the deadline
    ack_status: collections.Counter = field(default_factory=collections.Counter)
    non2xx: collections.Counter = field(default_factory=collections.Counter)
    transport: collections.Counter = field(default_factory=collections.Counter)
    retried: int = 0              # renames acknowledged only after more than one attempt
    max_gap: float = 0.0          # longest time between consecutive acknowledgements
    max_gap_at: tuple[float, float] = (0.0, 0.0)   # drill seconds (from, to) of that gap
    max_latency: float = 0.0      # longest first attempt -> acknowledgement
    last_error: str = ""


class Writer(threading.Thread):
    """Renames its books one at a time, alternating nodes, each rename retried with its
    Idempotency-Key until acknowledged."""

    def __init__(self, run: Run, index: int, books: list[str], stop: threading.Event):
        super().__init__(name=f"writer-{index}", daemon=True)
        self.run_ = run
        self.index = index
        self.books = books
        self.stop_event = stop
        self.stats = WriterStats(acked={b: [] for b in books}, unacked={b: [] for b in books})
        self.turn = index   # writers start on different nodes

    def next_node(self) -> Node:
        node = self.run_.nodes[NODE_IDS[self.turn % len(NODE_IDS)]]
        self.turn += 1
        return node

    def run(self) -> None:
        s = self.stats
        seq = 0
        last_ack = self.run_.now()
        while not self.stop_event.is_set():
            book = self.books[seq % len(self.books)]
            title = f"w{self.index}-{seq}"
            key = str(uuid.uuid4())
            first_try = self.run_.now()
            attempts = 0
            acked = False
            # Once started, a rename is seen through (acknowledged) even if the load is stopping.
            while self.run_.now() - first_try < RENAME_DEADLINE_S:
                node = self.next_node()
                attempts += 1
                try:
                    status, answer = http_json(
                        "PUT", f"{node.url}/books/{book}", {"title": title},
                        self.run_.admin_headers(**{"Idempotency-Key": key}))
                except TransportError as error:
                    s.transport[error.kind] += 1
                    s.last_error = f"{node.id}: {error}"
                    time.sleep(RETRY_PAUSE_S)
                    continue
                if 200 <= status < 300:
                    s.ack_status[status] += 1
                    acked = True
                    break
                s.non2xx[status] += 1
                code = answer.get("code") if isinstance(answer, dict) else None
                s.last_error = f"{node.id}: {status} {code or ''}".strip()
                time.sleep(RETRY_PAUSE_S)
            now = self.run_.now()
            if not acked:
                s.unacked[book].append(title)
            else:
                s.acked[book].append(title)
                if attempts > 1:
                    s.retried += 1
                s.max_latency = max(s.max_latency, now - first_try)
                if now - last_ack > s.max_gap:
                    s.max_gap, s.max_gap_at = now - last_ack, (last_ack, now)
                last_ack = now
            seq += 1


def total_acked(writers: list[Writer]) -> int:
    return sum(len(t) for w in writers for t in w.stats.acked.values())


# --- The drill ------------------------------------------------------------------------------------


def binary_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or out.stderr.strip() or f"exit {out.returncode}"
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"? ({error})"


def preflight(args: argparse.Namespace) -> None:
    """Fails early (exit 2) when the binaries or the services are not there."""
    for name in ("old", "new"):
        path = getattr(args, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise SystemExit(f"--{name} {path}: not an executable file")
    if shutil.which("psql") is None:
        raise SystemExit("psql is not on the PATH")
    host, _, port = args.nats_url.split(",")[0].removeprefix("nats://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as error:
        raise SystemExit(f"NATS is not reachable at {args.nats_url}: {error}")


def replace_node(run: Run, steps: list[StepResult], node: Node, binary: str, label: str,
                 name: str) -> None:
    """SIGTERM `node`, wait for its exit, start it again with `binary`, wait until formed. The
    step is listed in `steps` from the start, so a failed step still shows what it got to."""
    step = StepResult(name=name, node=node.id)
    steps.append(step)
    # A rejoined node gets its partitions back one at a time, after it already counts as formed:
    # show how far that got when the next step begins.
    try:
        held = f" [partitions: {run.describe(run.cluster_status())}]"
    except DrillError:
        held = ""
    step.began = run.now()
    run.mark(f"{name}: SIGTERM {node.id} ({node.binary_label}){held}")
    step.exit_code, step.stop_s, step.killed = node.stop()
    run.mark(f"{name}: {node.id} exited with {step.exit_code} after {step.stop_s:.2f} s"
             + (" (SIGKILLed)" if step.killed else ""))
    began = time.monotonic()
    try:
        step.start_s = node.start(binary, label)
    except DrillError:
        step.start_s = time.monotonic() - began
        raise
    run.mark(f"{name}: {node.id} ({label}) listening on {node.url} after {step.start_s:.2f} s")
    began = time.monotonic()
    try:
        status = run.wait_until_formed(fresh={node.id: node.spawned_ms - 1000})
    finally:
        step.reform_s = time.monotonic() - began
        step.ended = run.now()
    run.mark(f"{name}: cluster formed again after {step.reform_s:.2f} s "
             f"[{run.describe(status)}]")


@dataclass
class Verification:
    checks: list[tuple[bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))

    @property
    def failures(self) -> list[str]:
        return [text for ok, text in self.checks if not ok]


def stored_renames(run: Run, book: str) -> tuple[list[str], list[str]]:
    """The titles of the book's rename events, in stream order, and the types of any other event
    that carries a title (the creation). Uses the NEW binary's `events show`, OLD as fallback."""
    errors = []
    for binary in (run.new, run.old):
        result = run.tool(binary, "events", "show", f"book-{book}", "--limit", "100000", "--json")
        if result.returncode != 0:
            errors.append(result.stderr.strip()[-300:])
            continue
        renames, others = [], []
        for line in result.stdout.splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            payload = event.get("payload") or {}
            title = payload.get("title") if isinstance(payload, dict) else None
            if not isinstance(title, str):
                continue
            if event.get("event_type") == RENAME_EVENT:
                renames.append(title)
            else:
                others.append(f"{event.get('event_type')}:{title}")
        return renames, others
    raise DrillError(f"events show book-{book} failed: {' | '.join(errors)}")


def verify(run: Run, books: list[str], writers: list[Writer], steps: list[StepResult],
           v: Verification) -> None:
    acked = {b: t for w in writers for b, t in w.stats.acked.items()}
    unacked = {b: t for w in writers for b, t in w.stats.unacked.items()}

    # 1. The event log: every acknowledged title exactly once, in order; nothing else.
    missing = duplicated = phantom = misordered = wrong_last = 0
    examples: list[str] = []
    stored_total = 0
    for book in books:
        renames, others = stored_renames(run, book)
        stored_total += len(renames)
        counts = collections.Counter(renames)
        mine = acked.get(book, [])
        maybe = set(unacked.get(book, []))   # given up: may or may not have been applied
        lost = [t for t in mine if counts[t] == 0]
        twice = {t: n for t, n in counts.items() if n > 1}
        extra = [t for t in counts if t not in set(mine) and t not in maybe]
        missing += len(lost)
        duplicated += sum(n - 1 for n in twice.values())
        phantom += len(extra)
        examples += [f"book {book}: acked {t!r} has no event" for t in lost]
        examples += [f"book {book}: {t!r} stored {n} times" for t, n in twice.items()]
        examples += [f"book {book}: {t!r} stored but never acknowledged" for t in extra]
        # One writer per book, one rename at a time: the stream must follow the ack order.
        if not lost and [t for t in dict.fromkeys(renames) if t not in maybe] != mine:
            misordered += 1
            examples.append(f"book {book}: stored order differs from acknowledgement order")
        if mine and not maybe and (not renames or renames[-1] != mine[-1]):
            wrong_last += 1
            examples.append(f"book {book}: last rename event "
                            f"{renames[-1] if renames else None!r}, last ack {mine[-1]!r}")
        # The creation carries the first title; any other titled event is worth a note.
        unexpected = [o for o in others if not o.startswith("BookAdded:")]
        if unexpected:
            v.notes.append(f"book {book}: other events with a title: {unexpected[:3]}")
    n_acked = sum(len(t) for t in acked.values())
    v.check(missing == 0 and duplicated == 0 and phantom == 0,
            f"every acked title stored exactly once as {RENAME_EVENT}: {n_acked} acked, "
            f"{stored_total} rename events, {missing} missing, {duplicated} duplicates, "
            f"{phantom} never acked")
    v.check(misordered == 0, f"rename events in acknowledgement order ({misordered} books differ)")
    v.check(wrong_last == 0,
            f"last rename event = last acked title ({len(books) - wrong_last}/{len(books)} books)")
    v.notes += examples[:10]

    # 2. The read models of both nodes: GET /books/{id} shows the last acked title.
    expected = {b: t[-1] for b, t in acked.items() if t}
    began = time.monotonic()
    pending = {(n.id, b) for n in run.nodes.values() for b in expected}
    last_seen: dict[tuple[str, str], str] = {}
    while pending and time.monotonic() - began < CATCH_UP_TIMEOUT_S:
        for node_id, book in sorted(pending):
            node = run.nodes[node_id]
            try:
                status, body = http_json("GET", f"{node.url}/books/{book}",
                                         headers=run.admin_headers(), timeout=10)
            except TransportError as error:
                last_seen[(node_id, book)] = str(error)
                continue
            title = body.get("title") if isinstance(body, dict) else None
            last_seen[(node_id, book)] = f"{status} {title!r}"
            if status == 200 and title == expected[book]:
                pending.discard((node_id, book))
        if pending:
            time.sleep(0.25)
    waited = time.monotonic() - began
    v.check(not pending,
            f"GET /books/{{id}} shows the last acked title on n1 and n2 "
            f"({len(expected) * len(run.nodes) - len(pending)}/{len(expected) * len(run.nodes)} "
            f"after {waited:.2f} s)")
    for key in sorted(pending)[:5]:
        v.notes.append(f"{key[0]} book {key[1]}: expected {expected[key[1]]!r}, "
                       f"saw {last_seen.get(key)}")

    # 3. Health of both nodes.
    for node in run.nodes.values():
        try:
            status, body = http_json("GET", f"{node.url}/status", timeout=10)
            state = body.get("status") if isinstance(body, dict) else None
            version = body.get("version") if isinstance(body, dict) else None
            v.check(status == 200, f"GET /status on {node.id} ({node.binary_label}): {status} "
                                   f"{state}, version {version}")
        except TransportError as error:
            v.check(False, f"GET /status on {node.id}: {error}")

    # 4. Graceful stops and rename availability.
    bad = [f"{s.node} in '{s.name}' exited {s.exit_code}" + (" (SIGKILLed)" if s.killed else "")
           for s in steps if s.exit_code != 0 or s.killed]
    v.check(not bad, "every SIGTERMed node drained and exited 0 within "
                     f"{STOP_TIMEOUT_S:.0f} s" + (f": {'; '.join(bad)}" if bad else ""))
    n_unacked = sum(len(t) for t in unacked.values())
    v.check(n_unacked == 0, f"every rename acknowledged within {RENAME_DEADLINE_S:.0f} s "
                            f"({n_unacked} given up)")


def fmt_counter(counter: collections.Counter) -> str:
    if not counter:
        return "none"
    return ", ".join(f"{k}: {n}" for k, n in sorted(counter.items(), key=lambda kv: str(kv[0])))


def during(steps: list[StepResult], start: float, end: float) -> str:
    names = [s.name for s in steps if s.began < end and (s.ended or float("inf")) > start]
    return ", ".join(names) if names else "steady state"


def report(run: Run, args: argparse.Namespace, versions: dict, steps: list[StepResult],
           writers: list[Writer], load_window: tuple[float, float], migrations: dict,
           v: Verification, errors: list[str], cleanup: list[str]) -> bool:
    """Prints the report to stdout; returns True on PASS."""
    failures = errors + v.failures
    passed = not failures and bool(v.checks)
    out: list[str] = []
    p = out.append
    p(f"Quire rolling-upgrade drill: {'PASS' if passed else 'FAIL'}")
    p(f"  old binary  {args.old}  ({versions['old']})")
    p(f"  new binary  {args.new}  ({versions['new']})")
    p(f"  database    {run.db_name} on {args.pg_host}:{args.pg_port}    cluster {run.cluster} on "
      f"{run.nats_url}")
    p(f"  load        {args.books} books, {args.writers} writers, settle {args.settle:g} s, "
      f"requests alternate n1/n2, every rename retried with its Idempotency-Key until acked")
    p("")
    p("Timeline (seconds since the drill began)")
    for t, label in run.timeline:
        p(f"  {t:7.2f}  {label}")
    p("")
    p("Steps                          stop s  start s  re-form s  total s  exit")
    for s in steps:
        total = s.stop_s + s.start_s + s.reform_s
        exit_text = f"{s.exit_code}" + (" SIGKILL" if s.killed else "")
        p(f"  {s.name:<28} {s.stop_s:6.2f}  {s.start_s:7.2f}  {s.reform_s:9.2f}  {total:7.2f}  "
          f"{exit_text}")
    p("")
    p("Schema")
    rm = migrations
    p(f"  read models  rm_migrations max(version): before upgrade {rm.get('rm_before')}, after n1 "
      f"on NEW {rm.get('rm_after')}, after rollback of n2 {rm.get('rm_rollback')}")
    for line in rm.get("rm_new", []):
        p(f"               applied by NEW: {line}")
    p(f"  event store  _sqlx_migrations max(version): before {rm.get('es_before')}, after "
      f"{rm.get('es_after')}")
    p("")
    acked = total_acked(writers)
    duration = max(load_window[1] - load_window[0], 1e-9)
    ack_status = collections.Counter()
    non2xx = collections.Counter()
    transport = collections.Counter()
    for w in writers:
        ack_status.update(w.stats.ack_status)
        non2xx.update(w.stats.non2xx)
        transport.update(w.stats.transport)
    p("Load")
    p(f"  acked renames      {acked} in {duration:.1f} s = {acked / duration:.1f}/s "
      f"(answers {fmt_counter(ack_status)}); {sum(w.stats.retried for w in writers)} acked "
      f"only after a retry")
    p(f"  non-2xx answers    {sum(non2xx.values())} ({fmt_counter(non2xx)})")
    p(f"  transport errors   {sum(transport.values())} ({fmt_counter(transport)})")
    p(f"  {'writer':<7}{'books':>6}{'acked':>7}  {'longest ack gap: seconds, when (during)':<56}"
      f"{'longest rename':>15}")
    for w in writers:
        s = w.stats
        gap_from, gap_to = s.max_gap_at
        gap = (f"{s.max_gap:6.2f} s at {gap_from:.2f}-{gap_to:.2f} "
               f"({during(steps, gap_from, gap_to)})")
        p(f"  w{w.index:<6}{len(w.books):6}{sum(len(t) for t in s.acked.values()):7}  {gap:<56}"
          f"{s.max_latency:13.2f} s")
    p("")
    p("Verification")
    for ok, text in v.checks:
        p(f"  [{'ok' if ok else 'FAIL'}] {text}")
    for note in v.notes:
        p(f"         {note}")
    notes = list(run.tool_fallbacks)
    if rm.get("rm_before") is not None and rm.get("rm_before") == rm.get("rm_after"):
        notes.append("NEW added no read-model migration: the rollback probe ran OLD on an "
                     "unchanged read-model schema")
    if notes:
        p("")
        p("Observations")
        for note in notes:
            p(f"  - {note}")
    p("")
    p("Cleanup: " + "; ".join(cleanup))
    p("")
    if passed:
        p("RESULT: PASS")
    else:
        p("RESULT: FAIL")
        for reason in failures or ["no verification ran"]:
            p(f"  - {reason}")
    print("\n".join(out), flush=True)
    return passed


def nats_delete_stream(nats_url: str, stream: str, timeout: float = 5.0) -> str:
    """Deletes a JetStream stream (the cluster's lease bucket) with a minimal NATS client:
    CONNECT, SUB an inbox, PUB the JetStream API request, read the reply."""
    host, _, port = nats_url.split(",")[0].removeprefix("nats://").rpartition(":")
    inbox = f"_INBOX.quire_drill.{uuid.uuid4().hex}"
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        if not reader.readline().startswith(b"INFO"):
            return "unexpected NATS greeting"
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,'
                     b'"name":"quire-upgrade-drill","headers":true,"no_responders":true}\r\n'
                     + f"SUB {inbox} 1\r\nPUB $JS.API.STREAM.DELETE.{stream} {inbox} 0\r\n\r\n"
                     .encode())
        while True:
            line = reader.readline()
            if not line:
                return "NATS closed the connection"
            if line.startswith(b"PING"):
                sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                return line.decode(errors="replace").strip()
            elif line.startswith(b"MSG") or line.startswith(b"HMSG"):
                parts = line.split()
                size = int(parts[-1])
                header_len = int(parts[-2]) if line.startswith(b"HMSG") else 0
                payload = reader.read(size + 2)[header_len:size]
                if not payload:
                    return "no JetStream answer (no responders)"
                answer = json.loads(payload)
                if answer.get("success"):
                    return "deleted"
                return f"not deleted: {answer.get('error')}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Rolling upgrade of a two-node Quire cluster from OLD to NEW under write "
                    "load, with a rollback probe; verifies nothing acknowledged is lost or "
                    "duplicated.")
    parser.add_argument("--old", required=True, help="the quire binary the cluster starts on")
    parser.add_argument("--new", required=True, help="the quire binary it is upgraded to")
    parser.add_argument("--books", type=int, default=12, help="books renamed (default 12)")
    parser.add_argument("--writers", type=int, default=4, help="writer threads (default 4)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds of load between steps (default 5)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database, the NATS bucket and the temp dir (logs)")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres", help="trust auth is assumed")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    if args.books < 1 or args.writers < 1 or args.writers > args.books or args.settle < 0:
        parser.error("need books >= writers >= 1 and settle >= 0")
    try:
        preflight(args)
    except SystemExit as error:
        print(f"upgrade-drill: {error}", file=sys.stderr)
        return 2

    run = Run(args)
    versions = {"old": binary_version(run.old), "new": binary_version(run.new)}
    steps: list[StepResult] = []
    writers: list[Writer] = []
    stop_load = threading.Event()
    load_window = (0.0, 0.0)
    migrations: dict = {}
    errors: list[str] = []
    cleanup: list[str] = []
    v = Verification()
    books: list[str] = []
    interrupted = False
    log(f"run dir {run.tmp}, database {run.db_name}, cluster {run.cluster}")
    try:
        try:
            # 1. Fresh database, two OLD nodes, formed.
            run.create_database()
            for node in run.nodes.values():
                seconds = node.start(run.old, "OLD")
                run.mark(f"{node.id} (OLD) listening on {node.url} after {seconds:.2f} s")
            status = run.wait_until_formed()
            run.mark(f"cluster formed on OLD [{run.describe(status)}]")
            migrations["rm_before"] = run.max_version("rm_migrations")
            migrations["es_before"] = run.max_version("_sqlx_migrations")

            # 2. Books, through n1.
            books = [run.create_book(run.nodes["n1"], i) for i in range(args.books)]
            run.mark(f"created {len(books)} books through n1")

            # 3. Writers.
            writers = [Writer(run, i, books[i::args.writers], stop_load)
                       for i in range(args.writers)]
            load_start = run.now()
            for w in writers:
                w.start()
            run.mark(f"load started: {args.writers} writers")

            def settle() -> None:
                time.sleep(args.settle)
                log(f"acked so far: {total_acked(writers)}")

            # 4. n1 to NEW; the schema is now NEW's.
            settle()
            replace_node(run, steps, run.nodes["n1"], run.new, "NEW", "upgrade n1 OLD->NEW")
            run.tool_bins = [run.new, run.old]
            migrations["rm_after"] = run.max_version("rm_migrations")
            migrations["es_after"] = run.max_version("_sqlx_migrations")
            if migrations["rm_before"] is not None and migrations["rm_after"] is not None:
                migrations["rm_new"] = run.migrations_after(migrations["rm_before"])

            # 5. n2 to NEW.
            settle()
            replace_node(run, steps, run.nodes["n2"], run.new, "NEW", "upgrade n2 OLD->NEW")

            # 6. Rollback probe: n2 back to OLD on the migrated schema.
            settle()
            replace_node(run, steps, run.nodes["n2"], run.old, "OLD", "rollback n2 NEW->OLD")
            migrations["rm_rollback"] = run.max_version("rm_migrations")
            settle()
        except DrillError as error:
            errors.append(str(error))
            run.mark(f"step failed: {error}")
        finally:
            # Stop the load: each writer sees its in-flight rename through, then exits.
            if writers:
                stop_load.set()
                run.mark("load stopping (writers finish their in-flight rename)")
                for w in writers:
                    w.join(timeout=RENAME_DEADLINE_S + REQUEST_TIMEOUT_S + 5)
                    if w.is_alive():
                        errors.append(f"writer w{w.index} did not finish")
                load_window = (load_start, run.now())
                run.mark(f"load stopped: {total_acked(writers)} renames acked")

        # 7. Verification, also after a failed step (whatever can be checked is).
        for node in run.nodes.values():
            if node.proc is not None and not node.alive():
                errors.append(f"{node.id} ({node.binary_label}) is not running at the end "
                              f"(exit {node.proc.returncode}); see its log")
        if writers:
            try:
                verify(run, books, writers, steps, v)
            except DrillError as error:
                errors.append(f"verification: {error}")
    except KeyboardInterrupt:
        interrupted = True
        errors.append("interrupted")
        stop_load.set()
    finally:
        # 8. Cleanup: nodes, database, NATS bucket, temp dir.
        for node in run.nodes.values():
            if node.proc is not None and node.alive():
                code, seconds, killed = node.stop()
                cleanup.append(f"{node.id} stopped ({code}{', SIGKILLed' if killed else ''})")
        if args.keep:
            cleanup.append(f"kept database {run.db_name} and bucket quire_{run.cluster}")
        else:
            if run.db_created:
                try:
                    cleanup.append(f"database {run.drop_database()}")
                except (DrillError, subprocess.TimeoutExpired) as error:
                    cleanup.append(f"database not dropped: {error}")
            try:
                result = nats_delete_stream(run.nats_url, f"KV_quire_{run.cluster}")
                cleanup.append(f"NATS bucket {result}")
            except (OSError, ValueError) as error:
                cleanup.append(f"NATS bucket not deleted: {error}")
    passed = report(run, args, versions, steps, writers, load_window, migrations, v, errors,
                    cleanup) and not interrupted
    if args.keep or not passed:
        print(f"Logs kept in {run.tmp}", flush=True)
    else:
        shutil.rmtree(run.tmp, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
