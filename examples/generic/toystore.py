#!/usr/bin/env python3
"""toystore: a small primary-backup key-value store, written for faultline's
tests and for the walkthroughs in harness/docs/adapters.md. It is not a
database: each option reproduces one thing real systems do that the generic
adapter must handle. Python 3 standard library only.

  toystore.py node ...       run one node (node 1 is the fixed primary)
  toystore.py client         a faultline external client (register, set, append,
                             list-append transactions)
  toystore.py ask ADDR CMD   one request to a node's client port; prints the
                             answer, exits 1 unless it is OK (probe commands)

Ports: clients on --client; the replication log on --repl. With --election
the primary's heartbeats travel on a second port (a two-port system: a
follower sees the primary only while both ports connect). With --advertise
a follower tells the primary where to dial it, and the primary dials that
address to stream the log (an advertised-address system: it needs
peer_routing: shared, so the address it advertises is its proxied one).

Wrong on purpose, for the tests:
  --lag-ms N           the primary acknowledges a write before replicating it
                       and streams each entry N ms late; followers serve reads
                       (client: TOYSTORE_READS=any): stale reads
  --forget-on-restart  a node that restarts has lost its index: every read
                       fails from then on, writes still succeed
  --non-atomic-txn     a transaction's micro-operations run one at a time,
                       each append its own log entry, and other requests
                       run in between: others see half a transaction

Correct otherwise: the primary appends each write to its log (fsync), and
acknowledges it once a majority (itself included) holds it; reads go to
the primary (TOYSTORE_READS=primary, the default). A transaction is one
request to the primary, run under its lock: its reads see the state with
its own earlier appends, and its appends are one log entry.
"""
import argparse
import hashlib
import json
import os
import socket
import socketserver
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ left beside the example
import toystore_txn  # noqa: E402 (its transactions; a file beside this one)

PRIMARY = 1
HEARTBEAT_S = 0.1
PRIMARY_SEEN_S = 1.0
WRITE_TIMEOUT_S = 1.0
REDIAL_S = 0.2


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def peers(text):
    """`1=127.0.0.1:4001,3=...` -> {1: ("127.0.0.1", 4001), 3: ...}"""
    out = {}
    for item in filter(None, (text or "").split(",")):
        node, where = item.split("=", 1)
        out[int(node)] = addr(where)
    return out


class Store:
    """The log, the state it builds, and what the node knows of the others."""

    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.Condition()
        self.data = {}
        self.log = []  # (seq, key, value, op, appended_at)
        self.acked = {}  # follower id -> highest seq it holds
        self.last_repl = 0.0
        self.last_election = 0.0
        self.nodes = len(set(peers(opts.peers)) | {opts.id})
        os.makedirs(opts.data, exist_ok=True)
        marker = os.path.join(opts.data, "started")
        self.lost = opts.forget_on_restart and os.path.exists(marker)
        open(marker, "w").close()
        self.path = os.path.join(opts.data, "log.jsonl")
        good = 0
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line) if line.endswith(b"\n") else None
                    except ValueError:
                        entry = None
                    if entry is None:
                        break  # a torn last line: what was fsynced ends here
                    self._apply(entry["seq"], entry["key"], entry["value"], entry["op"])
                    good += len(line)
        self.file = open(self.path, "a")
        self.file.truncate(good)  # so the next entry does not follow a torn one

    def _apply(self, seq, key, value, op):
        if seq != len(self.log) + 1:
            return False
        self.log.append((seq, key, value, op, time.monotonic()))
        # `put` sets the value; `add` appends to the key's list; `txn`
        # (no key) holds a transaction's appends, `[["append", k, v], ...]`.
        if op == "txn":
            for _, k, v in value:
                self.data[str(k)] = self.data.get(str(k), []) + [v]
        else:
            self.data[key] = value if op == "put" else self.data.get(key, []) + [value]
        return True

    def append(self, seq, key, value, op):
        """Appends one entry (fsynced) if it is the next; under the lock."""
        if not self._apply(seq, key, value, op):
            return False
        self.file.write(json.dumps({"seq": seq, "key": key, "value": value, "op": op}) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.lock.notify_all()
        return True

    def primary_seen(self):
        last = self.last_election if self.opts.election else self.last_repl
        return self.opts.id == PRIMARY or time.monotonic() - last < PRIMARY_SEEN_S

    def digest(self):
        text = json.dumps(sorted(self.data.items()))
        return "%d %s" % (len(self.log), hashlib.sha256(text.encode()).hexdigest()[:16])


def send(stream, message):
    stream.write((json.dumps(message) + "\n").encode())
    stream.flush()


def stream_log(store, stream, follower, start):
    """Primary side of one replication stream: entries after `start`, each
    `--lag-ms` late, a heartbeat while idle; acks on the other direction."""
    def acks():
        try:
            for line in stream:
                with store.lock:
                    store.acked[follower] = max(store.acked.get(follower, 0), json.loads(line)["ack"])
                    store.lock.notify_all()
        except (OSError, ValueError, KeyError):
            pass  # the stream broke; the sending side ends too
    threading.Thread(target=acks, daemon=True).start()
    sent = start
    lag = store.opts.lag_ms / 1000.0
    while True:
        with store.lock:
            store.lock.wait_for(lambda: len(store.log) > sent, timeout=HEARTBEAT_S)
            due = [e for e in store.log[sent:] if time.monotonic() - e[4] >= lag]
        for seq, key, value, op, _ in due:
            send(stream, {"seq": seq, "key": key, "value": value, "op": op})
            sent = seq
        if not due:
            send(stream, {"ping": 1})
        if lag and len(due) == 0:
            time.sleep(min(lag, HEARTBEAT_S))


def follow(store, stream):
    """Follower side of a replication stream: append and acknowledge."""
    for line in stream:
        message = json.loads(line)
        with store.lock:
            store.last_repl = time.monotonic()
            if "seq" in message:
                store.append(message["seq"], message["key"], message["value"], message["op"])
                send(stream, {"ack": len(store.log)})


class Quiet(socketserver.StreamRequestHandler):
    """A peer that went away (a cut, a kill) ends its connection quietly."""
    def handle(self):
        try:
            self.serve()
        except (OSError, ValueError, KeyError):
            pass


class Replication(Quiet):
    def serve(self):
        store = self.server.store
        hello = json.loads(self.rfile.readline())
        if hello.get("subscribe") and store.opts.id == PRIMARY:
            stream = self.connection.makefile("rwb")
            stream_log(store, stream, hello["subscribe"], hello["from"])
        elif hello.get("advertise") and store.opts.id == PRIMARY:
            threading.Thread(target=dial_back, args=(store, hello["advertise"], hello["at"]), daemon=True).start()
            # Answered, so the connection lives until the follower reads
            # it (the proxy ties a connection to its node while it lives).
            send(self.wfile, {"ok": True})
        elif hello.get("stream") and store.opts.id != PRIMARY:
            stream = self.connection.makefile("rwb")
            with store.lock:
                send(stream, {"ack": len(store.log)})
            follow(store, stream)


dialed_back = set()


def dial_back(store, follower, at):
    """The primary dials the address a follower advertised."""
    if follower in dialed_back:
        return
    dialed_back.add(follower)
    try:
        stream = socket.create_connection(addr(at), timeout=2).makefile("rwb")
        send(stream, {"stream": True})
        start = json.loads(stream.readline())["ack"]
        stream_log(store, stream, follower, start)
    except (OSError, ValueError, KeyError):
        pass
    finally:
        dialed_back.discard(follower)


def subscribe_forever(store, primary):
    while True:
        try:
            with socket.create_connection(primary, timeout=2) as conn:
                conn.settimeout(PRIMARY_SEEN_S)
                stream = conn.makefile("rwb")
                with store.lock:
                    hello = {"subscribe": store.opts.id, "from": len(store.log)}
                send(stream, hello)
                follow(store, stream)
        except (OSError, ValueError):
            pass
        time.sleep(REDIAL_S)


def advertise_forever(store, primary):
    while True:
        if time.monotonic() - store.last_repl > PRIMARY_SEEN_S:
            try:
                with socket.create_connection(primary, timeout=1) as conn:
                    conn.sendall((json.dumps({"advertise": store.opts.id, "at": store.opts.advertise}) + "\n").encode())
                    conn.makefile("rb").readline()
            except OSError:
                pass
        time.sleep(REDIAL_S * 2)


class Election(Quiet):
    """The primary's heartbeats, one line per HEARTBEAT_S to each follower."""
    def serve(self):
        while True:
            self.wfile.write(b"PING\n")
            self.wfile.flush()
            time.sleep(HEARTBEAT_S)


def heartbeats_forever(store, primary):
    while True:
        try:
            with socket.create_connection(primary, timeout=1) as conn:
                conn.settimeout(PRIMARY_SEEN_S)
                for _ in conn.makefile("rb"):
                    store.last_election = time.monotonic()
        except OSError:
            pass
        time.sleep(REDIAL_S)


class Clients(Quiet):
    def serve(self):
        for line in self.rfile:
            words = line.decode().rstrip("\n").split(" ", 2)
            self.wfile.write((self.server.store_answer(words) + "\n").encode())
            self.wfile.flush()


def answer(store, words):
    opts = store.opts
    command = words[0]
    with store.lock:
        seen = store.primary_seen()
        if command == "PING":
            return "OK" if seen else "ERR no primary"
        if command == "LEADER":
            return "OK n%d" % PRIMARY if seen else "OK"
        if command == "DIGEST":
            return "OK " + store.digest()
        if command == "STATUS":
            now = time.monotonic()
            return "OK " + json.dumps({
                "id": opts.id, "applied": len(store.log),
                "repl_link": now - store.last_repl < PRIMARY_SEEN_S,
                "election_link": now - store.last_election < PRIMARY_SEEN_S,
            })
        if command == "GET" and len(words) == 2:
            if store.lost:
                return "ERR index lost at restart"
            if not seen:
                return "ERR no primary"
            return "OK " + json.dumps(store.data.get(words[1]))
        if command in ("PUT", "ADD") and len(words) == 3:
            if opts.id != PRIMARY:
                return "ERR not primary"
            seq = len(store.log) + 1
            store.append(seq, words[1], json.loads(words[2]), command.lower())
            return "OK" if replicated(store, seq) else "ERR timeout"
        if command == "TXN" and len(words) >= 2:
            mops = json.loads(" ".join(words[1:]))
            if opts.id != PRIMARY:
                return "ERR not primary"
            if not all(mop[0] in ("append", "r") for mop in mops):
                return "ERR bad request"
            if store.lost and any(mop[0] == "r" for mop in mops):
                return "ERR index lost at restart"
            run = toystore_txn.one_at_a_time if opts.non_atomic_txn else toystore_txn.atomically
            done, seq = run(store, mops)
            return "OK " + json.dumps(done) if replicated(store, seq) else "ERR timeout"
    return "ERR bad request"


def replicated(store, seq):
    """Waits until a majority (the primary included) holds entry `seq`;
    under the lock. With --lag-ms the primary does not wait."""
    if store.opts.lag_ms or seq == 0:
        return True
    need = store.nodes // 2
    held = lambda: sum(1 for acked in store.acked.values() if acked >= seq) >= need
    return store.lock.wait_for(held, timeout=WRITE_TIMEOUT_S)


def serve(where, handler, store):
    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
    server = Server(addr(where), handler)
    server.store = store
    server.store_answer = lambda words: answer(store, words)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def node(opts):
    store = Store(opts)
    serve(opts.repl, Replication, store)
    if opts.election:
        serve(opts.election, Election, store)
    if opts.id != PRIMARY:
        primary_repl = peers(opts.peers)[PRIMARY]
        if opts.advertise:
            threading.Thread(target=advertise_forever, args=(store, primary_repl), daemon=True).start()
        else:
            threading.Thread(target=subscribe_forever, args=(store, primary_repl), daemon=True).start()
        if opts.election:
            primary_election = peers(opts.election_peers)[PRIMARY]
            threading.Thread(target=heartbeats_forever, args=(store, primary_election), daemon=True).start()
    serve(opts.client, Clients, store)
    print("toystore node %d serving clients on %s" % (opts.id, opts.client), flush=True)
    while True:
        time.sleep(3600)


def ask(where, command):
    try:
        with socket.create_connection(addr(where), timeout=0.5) as conn:
            conn.settimeout(0.5)
            conn.sendall((command + "\n").encode())
            reply = conn.makefile("rb").readline().decode().rstrip("\n")
    except OSError as error:
        print(error, file=sys.stderr)
        return 1
    if reply == "OK" or reply.startswith("OK "):
        print(reply[3:])
        return 0
    print(reply, file=sys.stderr)
    return 1


class NotSent(OSError):
    """No connection to the node could be opened: nothing was sent."""


class Client:
    """faultline's external client protocol (harness/docs/adapters.md)."""

    def __init__(self):
        self.nodes = [addr(a) for a in os.environ["FAULTLINE_NODES"].split(",")]
        process = int(os.environ.get("FAULTLINE_PROCESS", "0"))
        reads_any = os.environ.get("TOYSTORE_READS", "primary") == "any"
        self.read_node = process % len(self.nodes) if reads_any else 0
        self.lists = os.environ.get("FAULTLINE_WORKLOAD") in ("set", "append")
        self.streams = {}

    def request(self, node, line):
        """Sends one request line and returns the answer; NotSent if no
        connection could be opened, any other OSError once it may be sent."""
        if node not in self.streams:
            try:
                conn = socket.create_connection(self.nodes[node], timeout=1)
            except OSError as error:
                raise NotSent(str(error)) from error
            self.streams[node] = conn.makefile("rwb")
        stream = self.streams[node]
        try:
            stream.write((line + "\n").encode())
            stream.flush()
            reply = stream.readline().decode().rstrip("\n")
            if not reply:
                raise ConnectionError("connection closed")
        except OSError:
            del self.streams[node]
            raise
        return reply

    def transaction(self, op):
        """A list-append transaction: one TXN request to the primary, which
        answers the micro-operations with the reads filled in. Reads alone
        change nothing, so a lost answer to them is a `fail`."""
        answer = {"id": op["id"], "node": 0}
        reads_only = all(mop[0] == "r" for mop in op["value"])
        try:
            reply = self.request(0, "TXN " + json.dumps(op["value"], separators=(",", ":")))
        except NotSent as error:
            return {**answer, "type": "fail", "error": str(error)}
        except OSError as error:
            return {**answer, "type": "fail" if reads_only else "info", "error": str(error)}
        if reply.startswith("OK "):
            return {**answer, "type": "ok", "value": json.loads(reply[3:])}
        # The primary applied a timed-out transaction and may still replicate it.
        unknown = reply == "ERR timeout"
        return {**answer, "type": "info" if unknown else "fail", "error": reply[4:]}

    def invoke(self, op):
        if op["f"] == "txn":
            return self.transaction(op)
        reading = op["f"] in ("read", "get")
        node = self.read_node if reading else 0
        answer = {"id": op["id"], "node": node}
        verb = {"read": "GET", "get": "GET", "write": "PUT", "put": "PUT", "add": "ADD", "append": "ADD"}.get(op["f"])
        if verb is None:
            return {**answer, "type": "fail", "error": "unsupported operation " + op["f"]}
        line = "GET %s" % op["key"] if reading else "%s %s %s" % (verb, op["key"], json.dumps(op["value"]))
        try:
            reply = self.request(node, line)
        except NotSent as error:
            return {**answer, "type": "fail", "error": str(error)}
        except OSError as error:
            # Sent (on a fresh connection too): a write may have landed.
            return {**answer, "type": "fail" if reading else "info", "error": str(error)}
        if reply.startswith("OK"):
            if not reading:
                return {**answer, "type": "ok"}
            value = json.loads(reply[3:])
            return {**answer, "type": "ok", "value": [] if value is None and self.lists else value}
        # The primary applied a timed-out write and may still replicate it.
        unknown = reply == "ERR timeout"
        return {**answer, "type": "info" if unknown else "fail", "error": reply[4:]}


def client():
    me = Client()
    for line in sys.stdin:
        print(json.dumps(me.invoke(json.loads(line))), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("node")
    run.add_argument("--id", type=int, required=True)
    run.add_argument("--client", required=True)
    run.add_argument("--repl", required=True)
    run.add_argument("--peers", default="")
    run.add_argument("--data", required=True)
    run.add_argument("--election")
    run.add_argument("--election-peers", default="")
    run.add_argument("--advertise")
    run.add_argument("--lag-ms", type=int, default=0)
    run.add_argument("--forget-on-restart", action="store_true")
    run.add_argument("--non-atomic-txn", action="store_true")
    probe = commands.add_parser("ask")
    probe.add_argument("addr")
    probe.add_argument("request")
    commands.add_parser("client")
    opts = parser.parse_args()
    if opts.command == "node":
        node(opts)
    elif opts.command == "ask":
        sys.exit(ask(opts.addr, opts.request))
    else:
        client()


if __name__ == "__main__":
    main()
