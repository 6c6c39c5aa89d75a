"""toystore's list-append transactions (harness/docs/transactions.md), for
toystore.py: the primary's side of a TXN request, correct or with the
--non-atomic-txn bug. The client's side is toystore.py's Client.transaction.

A transaction is `[["append", k, v], ["r", k, null], ...]`; the answer is
the same list with every read filled in with the key's whole list.
"""
# How long the non-atomic primary lets go of its lock between two
# micro-operations of one transaction.
YIELD_S = 0.005


def atomically(store, mops):
    """Runs a transaction under the store's lock, throughout: each read sees
    the state with the transaction's own earlier appends, and the appends
    are one log entry. Returns the answer and that entry's seq (0: the
    transaction wrote nothing)."""
    mine = {}
    done, appends = [], []
    for f, key, value in mops:
        current = mine.get(str(key), store.data.get(str(key), []))
        if f == "append":
            mine[str(key)] = current + [value]
            appends.append([f, key, value])
            done.append([f, key, value])
        else:
            done.append([f, key, list(current)])
    if not appends:
        return done, 0
    seq = len(store.log) + 1
    store.append(seq, None, appends, "txn")
    return done, seq


def one_at_a_time(store, mops):
    """--non-atomic-txn: each micro-operation on its own, each append its
    own log entry, the lock let go for YIELD_S between two of them, so
    other requests see half a transaction. Returns the answer and the seq
    of the last entry written (0: none)."""
    done, seq = [], 0
    for index, (f, key, value) in enumerate(mops):
        if index:
            store.lock.wait_for(lambda: False, timeout=YIELD_S)
        if f == "append":
            seq = len(store.log) + 1
            store.append(seq, str(key), value, "add")
            done.append([f, key, value])
        else:
            done.append([f, key, list(store.data.get(str(key), []))])
    return done, seq
