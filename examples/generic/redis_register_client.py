#!/usr/bin/env python3
"""A faultline external client (line protocol, see harness/docs/adapters.md)
for one Redis server: register and cas-register workloads.

stdin:  one JSON operation per line  {"id":1,"process":0,"f":"write","key":"cas-0","value":3}
stdout: one JSON result per line     {"id":1,"type":"ok"}   (type: ok | fail | info)
"""
import json, os, socket, sys

CAS = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 else return 0 end"
host, port = os.environ["FAULTLINE_NODES"].split(",")[0].rsplit(":", 1)
stream = None


def command(*args):
    args = [str(a).encode() for a in args]
    stream.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    stream.flush()
    line = stream.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:].strip()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b"$":
        return None if int(rest) < 0 else stream.read(int(rest) + 2)[:-2].decode()
    return rest.decode()


for line in sys.stdin:
    op = json.loads(line)
    answer = {"id": op["id"]}
    if stream is None:
        try:
            stream = socket.create_connection((host, int(port)), timeout=1).makefile("rwb")
        except OSError as error:  # nothing was sent: a definite failure
            print(json.dumps({**answer, "type": "fail", "error": str(error)}), flush=True)
            continue
    try:
        if op["f"] == "read":
            value = command("GET", op["key"])
            answer.update(type="ok", value=None if value is None else int(value))
        elif op["f"] == "get":
            answer.update(type="ok", value=command("GET", op["key"]))
        elif op["f"] in ("write", "put"):  # faultline's liveness probe puts a string
            command("SET", op["key"], op["value"])
            answer["type"] = "ok"
        elif op["f"] == "cas":
            swapped = command("EVAL", CAS, 1, op["key"], *op["value"]) == "1"
            answer.update(type="ok" if swapped else "fail")
        else:
            answer.update(type="fail", error="unsupported operation " + op["f"])
    except (OSError, ValueError, RuntimeError) as error:
        stream = None  # unknown outcome: reads fail, writes are info
        answer.update(type="fail" if op["f"] in ("read", "get") else "info", error=str(error))
    print(json.dumps(answer), flush=True)
