#!/usr/bin/env python3
"""Sharing and crash safety. First 200 messages are delivered by two
senders with no kill: each arrives exactly once. Then 1,000 messages are queued with tlsgate-sendmail, then two
tlsgate-smtpout senders deliver them to a local sink while one of them is
killed with SIGKILL (and replaced) every few hundred milliseconds. Every
message must arrive at least once; duplicates are counted and printed
(docs/queue.md explains the window). Bounded to about two minutes.

usage: test_kill.py BINDIR [COUNT]
"""
import collections
import concurrent.futures
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from outlib import Env, Failure, Peer, check  # noqa: E402


def queue_all(env, count, tag="kill"):
    def one(i):
        return env.sendmail(["-T", "acme", "-i", "user@sink.test"],
                            "Subject: %d\nMessage-ID: <%d@%s.test>\n\n"
                            "message %d\n" % (i, i, tag, i))

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for rc, err in ex.map(one, range(count)):
            check(rc == 0, "sendmail failed: %s" % err)
    check(len(env.queue_ids()) >= count, "not every message is queued")


def received(peer):
    ids = []
    for l in peer.messages():
        ids.append(l.split()[1])
    return ids


def churn(env, count, deadline):
    """Kills one sender at random every 0.05-0.25 s, starting a new one in
    its place, until the queue is empty or the deadline passes."""
    live = [env.start_sender(), env.start_sender()]
    kills = 0
    while env.queue_ids() and time.time() < deadline:
        time.sleep(random.uniform(0.05, 0.25))
        victim = random.choice(live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        live.remove(victim)
        live.append(env.start_sender())
    return live, kills


def main():
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    env = Env(sys.argv[1], "kill")
    ok = False
    try:
        env.init_store()
        sink = Peer(env, "sink", "slow")
        env.admin("route", "add", "sink.test", "127.0.0.1:%d" % sink.port)
        env.start_engine()

        # Normal case first: two senders share the queue, nobody is
        # killed, and no message may arrive twice.
        queue_all(env, 200, "calm")
        calm = [env.start_sender(), env.start_sender()]
        end = time.time() + 60
        while env.queue_ids() and time.time() < end:
            time.sleep(0.1)
        for p in calm:
            env.stop_sender(p)
        got = collections.Counter(received(sink))
        check(len(got) == 200 and max(got.values()) == 1,
              "two senders without kills: %d distinct, max %d copies" %
              (len(got), max(got.values() or [0])))

        start = time.time()
        queue_all(env, count)
        queued = time.time() - start
        live, kills = churn(env, count, start + 100)
        # Let the survivors drain what the last kill left behind.
        end = time.time() + 15
        while env.queue_ids() and time.time() < end:
            time.sleep(0.2)
        for p in live:
            env.stop_sender(p)
        ids = [i for i in received(sink) if i.endswith("@kill.test>")]
        counts = collections.Counter(ids)
        want = {"<%d@kill.test>" % i for i in range(count)}
        missing = want - set(counts)
        dups = sum(n - 1 for n in counts.values() if n > 1)
        print("queued %d in %.1fs, delivered in %.1fs, %d kills, %d received"
              ", %d duplicates, %d missing, %d left in queue" %
              (count, queued, time.time() - start - queued, kills, len(ids),
               dups, len(missing), len(env.queue_ids())))
        check(not missing, "lost messages: %s" % sorted(missing)[:10])
        check(not env.queue_ids(), "queue not empty at the end")
        check(kills >= 3, "too few kills to mean anything")
        ok = True
    except Failure as e:
        print("FAIL:", e)
        print(env.log()[-3000:])
    finally:
        env.close(keep=not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
