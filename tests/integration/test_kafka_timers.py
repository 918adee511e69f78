"""Exactly-once timers of the Kafka pipeline (common/kafka.h, "Timers") on the
real broker.

tests/integration/timer_probe runs a pipeline whose 200 ms timer produces one
record per slot (value = the slot, header "txn" = the producer's
transactional id). An independent read_committed consumer (confluent-kafka)
then checks:
- no slot is ever committed twice, across SIGKILLs at random moments and
  restarts with the same transactional id, and across two replicas of one
  group taking the timers from each other;
- slots are contiguous while a process runs the timers: every gap in the
  slots ends exactly at the "from_slot" a process logged when it caught up
  with the markers (slots that passed while nobody ran the timers are not
  made up afterwards, by design).
"""
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer

from conftest import BOOTSTRAP, LOGS, ROOT, create_topics

PROBE = os.environ.get("TIMER_PROBE_BIN", os.path.join(ROOT, "build-asan", "tests", "integration", "timer_probe"))


class Probe:
    """One timer_probe process; its JSON log lines go to a file."""

    def __init__(self, name, env):
        self.name, self.env = name, env
        self.proc = None
        self.starts = 0
        self.logs = []

    def start(self):
        os.makedirs(LOGS, exist_ok=True)
        self.starts += 1
        path = os.path.join(LOGS, f"{self.name}.{self.starts}.log")
        out = open(path, "wb")
        # read through a handle of our own: the file stays readable even if
        # another run clears the logs folder meanwhile
        self.logs.append(open(path, "rb"))
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen([PROBE], env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def events(self, msg, log=None):
        out = []
        for f in [log] if log else self.logs:
            f.seek(0)
            for line in f.read().splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("msg") == msg:
                    out.append(ev)
        return out

    def running(self):
        """True once the current process has caught up and runs the timer."""
        return bool(self.events("kafka timer running", self.logs[-1]))

    def from_slots(self):
        return {int(ev["from_slot"]) for ev in self.events("kafka timer running")}

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        if self.alive():
            self.kill()
        for f in self.logs:
            f.close()


class Slots:
    """Reads the probe's output topic read_committed in a thread: (slot, txn)."""

    def __init__(self, topic):
        self.topic = topic
        self.got = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c = Consumer({
            "bootstrap.servers": BOOTSTRAP,
            "group.id": "reader-" + uuid.uuid4().hex,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })
        c.subscribe([self.topic])
        try:
            while not self.stop.is_set():
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                txn = dict(m.headers() or []).get("txn", b"").decode()
                with self.lock:
                    self.got.append((int(m.value()), txn))
        finally:
            c.close()

    def snapshot(self):
        with self.lock:
            return list(self.got)

    def wait_for(self, pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self.snapshot()):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def finish(self, settle=3.0):
        time.sleep(settle)  # what was committed last reaches the reader
        self.stop.set()
        self.thread.join(timeout=30)
        return self.snapshot()


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def check_slots(got, from_slots):
    slots = [s for s, _ in got]
    dups = sorted({s for s in slots if slots.count(s) > 1})
    assert not dups, f"slots committed more than once: {dups[:20]}"
    ordered = sorted(slots)
    for a, b in zip(ordered, ordered[1:]):
        if b != a + 1:
            assert b in from_slots, (
                f"slots {a + 1}..{b - 1} are missing but {b} is not where a process started running "
                f"the timer (from_slot values: {sorted(from_slots)})")
    return ordered


@pytest.fixture
def probe_env():
    assert os.access(PROBE, os.X_OK), f"{PROBE} is not built (scripts/build.sh asan)"
    tag = uuid.uuid4().hex[:10]
    out = f"itest.timers.t{tag}.out"
    create_topics([out], partitions=1)
    return {
        "tag": tag,
        "env": {
            "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "PROBE_TIMERS_TOPIC": f"itest.timers.t{tag}.timers",
            "PROBE_OUT_TOPIC": out,
            "PROBE_INTERVAL_MS": "200",
        },
        "out": out,
    }


def test_timer_exactly_once_across_sigkill(probe_env):
    """SIGKILL at random moments (before the first tick, while ticking), 9
    times, each restart with the same transactional id: no slot twice. Each
    incarnation joins its own consumer group: a killed member would otherwise
    hold the timers partition for the group's session timeout (45 s), which
    changes nothing here but the waiting."""
    rng = random.Random(probe_env["tag"])
    reader = Slots(probe_env["out"])
    env = dict(probe_env["env"], PROBE_TXN_ID=f"timer-probe-{probe_env['tag']}")
    probe = Probe(f"timer_probe.{probe_env['tag']}", env)
    kills = 0
    try:
        for k in range(9):
            probe.env["PROBE_GROUP"] = f"timer-probe-{probe_env['tag']}-{k}"
            probe.start()
            if k % 3 == 0:
                time.sleep(rng.uniform(0.2, 3.0))  # anywhere: starting, catching up or ticking
            else:
                wait_until(probe.running, 60, "the probe to run its timer")
                time.sleep(rng.uniform(0.0, 1.5))  # in the middle of ticks
            assert probe.alive(), f"the probe exited early: see {probe.logs[-1].name}"
            probe.kill(signal.SIGKILL)
            kills += 1
        probe.env["PROBE_GROUP"] = f"timer-probe-{probe_env['tag']}-last"
        probe.start()
        wait_until(probe.running, 60, "the last probe to run its timer")
        before = len(reader.snapshot())
        reader.wait_for(lambda got: len(got) >= before + 10, 60, "10 more slots")
        assert probe.kill(signal.SIGTERM) == 0
        got = reader.finish()
        assert kills == 9
        ordered = check_slots(got, probe.from_slots())
    finally:
        probe.close()
    assert len(ordered) >= 10


def test_two_replicas_never_run_a_slot_twice(probe_env):
    """Two probes in one group (two transactional ids) share the timers
    partition: only its owner ticks. The owner is stopped (SIGTERM) and
    restarted a few times, so the timers move between them; then the owner is
    SIGKILLed and the other takes over once the group drops it. No slot twice,
    gaps only where a new owner started."""
    tag = probe_env["tag"]
    reader = Slots(probe_env["out"])
    probes = {}
    for name in ("a", "b"):
        env = dict(probe_env["env"], PROBE_GROUP=f"timer-probes-{tag}", PROBE_TXN_ID=f"timer-probe-{tag}-{name}")
        probes[env["PROBE_TXN_ID"]] = Probe(f"timer_probe.{tag}.{name}", env)
    try:
        for p in probes.values():
            p.start()
        owners = set()
        for _ in range(4):
            n = len(reader.snapshot())
            reader.wait_for(lambda got: len(got) >= n + 5, 90, "5 more slots")
            owner = probes[reader.snapshot()[-1][1]]
            owners.add(owner.env["PROBE_TXN_ID"])
            assert owner.kill(signal.SIGTERM) == 0
            owner.start()
        n = len(reader.snapshot())
        reader.wait_for(lambda got: len(got) >= n + 5, 90, "5 more slots")
        owner_id = reader.snapshot()[-1][1]
        probes[owner_id].kill(signal.SIGKILL)
        other = next(i for i in probes if i != owner_id)
        # the group drops the killed member after its session timeout (45 s)
        reader.wait_for(lambda got: any(t == other for _, t in got[n:]) and got[-1][1] == other, 120,
                        "the other probe to take the timers over")
        n = len(reader.snapshot())
        reader.wait_for(lambda got: len(got) >= n + 5, 60, "5 more slots from the new owner")
        assert probes[other].kill(signal.SIGTERM) == 0
        got = reader.finish()
        from_slots = set().union(*(p.from_slots() for p in probes.values()))
        check_slots(got, from_slots)
        assert len({t for _, t in got}) == 2, "both probes should have run the timers at some point"
    finally:
        for p in probes.values():
            p.close()


def test_ready_while_slow_ticks_run(probe_env):
    """A pipeline with timers and no input: every tick takes 600 ms of a 1 s
    slot. /ready must not call a tick that is running "in flight for over
    15 s" (it is timed from its own start, not from the last batch's), so the
    probe's readiness log never shows that reason and does show ready."""
    tag = probe_env["tag"]
    reader = Slots(probe_env["out"])
    env = dict(probe_env["env"], PROBE_GROUP=f"timer-probe-slow-{tag}", PROBE_TXN_ID=f"timer-probe-slow-{tag}",
               PROBE_INTERVAL_MS="1000", PROBE_TICK_SLEEP_MS="600")
    p = Probe(f"timer_probe.{tag}.slow", env)
    try:
        p.start()
        reader.wait_for(lambda got: len(got) >= 10, 120, "10 slow slots")
        assert p.kill(signal.SIGTERM) == 0
        reader.finish(settle=0.5)
        seen = p.events("probe readiness")
        stuck = [ev["why"] for ev in seen if "in flight" in (ev.get("why") or "")]
        assert stuck == [], f"ready reported a running tick as stuck: {stuck[:3]}"
        assert any(ev.get("ready") == "true" for ev in seen), seen[-5:]
    finally:
        p.close()
