"""What the appliers' integration tests share (weight-recalibrator, slo-adjuster):
one test's topics, database and replicas of one applier, the records an
independent producer sends them (confluent-kafka + fastavro), and the readers
of what they publish (read_committed consumers, pymongo)."""
import os
import time
import uuid

import pymongo
import pytest

import hive_avro
from conftest import BOOTSTRAP, MONGODB_URI, ROOT, Service, create_topics, free_port, producer, read_committed

# Per applier: its binary's variable, the optimization type it owns first, its
# state topics (config key -> topic prefix), the versioned collection and the
# databases it writes (the slo-adjuster's policies applier has its own).
KINDS = {
    "weight-recalibrator": {
        "state": {"KAFKA_WEIGHTS_TOPIC": "consensus.weights"},
        "type": "WEIGHT_RECALIBRATION", "mode": "DELTA", "coll": "weights", "dbs": ("",),
        "inputs": {"KAFKA_DECISIONS_TOPIC": "consensus.decisions"},
    },
    "slo-adjuster": {
        "state": {"KAFKA_SLOS_TOPIC": "orchestrator.slos", "KAFKA_POLICIES_TOPIC": "orchestrator.policies"},
        "type": "SLO_ADJUSTMENT", "mode": "RELATIVE", "coll": "slos", "dbs": ("", "_policies"),
    },
}


def binary(name):
    var = name.upper().replace("-", "_") + "_BIN"
    return os.environ.get(var, os.path.join(ROOT, "build", name, name))


class Applier:
    """Topics, database and replicas of one applier for one test. `commands`,
    `applied` and `telemetry` may name topics shared with other services (the
    end-to-end test runs both appliers behind the optimizer)."""

    def __init__(self, name, tag=None, commands=None, applied=None, telemetry=None):
        kind = KINDS[name]
        self.name = name
        self.tag = tag or uuid.uuid4().hex[:10]
        t = self.tag
        self.commands = commands or f"optimization.commands.a{t}"
        self.applied = applied or f"optimization.applied.a{t}"
        self.telemetry = telemetry or f"telemetry.aggregated.a{t}"
        self.state_env = {k: f"{prefix}.a{t}" for k, prefix in kind["state"].items()}
        self.state = next(iter(self.state_env.values()))  # consensus.weights or orchestrator.slos
        self.slos = self.state_env.get("KAFKA_SLOS_TOPIC")
        self.policies = self.state_env.get("KAFKA_POLICIES_TOPIC")
        self.timers = f"{name}.timers.a{t}"
        self.coll = kind["coll"]
        # The applier's other inputs (consensus.decisions): one topic each per test.
        self.inputs_env = {k: f"{prefix}.a{t}" for k, prefix in kind.get("inputs", {}).items()}
        self.decisions = self.inputs_env.get("KAFKA_DECISIONS_TOPIC")
        own = [] if commands else [self.commands, self.commands + ".dlq"]
        own += [] if applied else [self.applied]
        own += [] if telemetry else [self.telemetry, self.telemetry + ".dlq"]
        own += [x for topic in self.inputs_env.values() for x in (topic, topic + ".dlq")]
        create_topics(own + list(self.state_env.values()))
        self.db = f"itest_{name.split('-')[0]}_{t}"
        self.dbs = [self.db + suffix for suffix in kind["dbs"]]
        self.binary = binary(name)
        self.replicas = []
        self.svc = None

    def replica(self, **extra):
        """A new replica (not started); the first one is also self.svc."""
        i = len(self.replicas)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "KAFKA_COMMANDS_TOPIC": self.commands,
            "KAFKA_APPLIED_TOPIC": self.applied,
            "KAFKA_TELEMETRY_TOPIC": self.telemetry,
            "KAFKA_TIMERS_TOPIC": self.timers,
            "KAFKA_CONSUMER_GROUP": f"{self.name}-{self.tag}",
            "KAFKA_TRANSACTIONAL_ID": f"{self.name}-{self.tag}-{i}",
            "MONGODB_URI": MONGODB_URI,
            "MONGODB_DATABASE": self.db,
            "HTTP_PORT": str(free_port()),
            "LOG_LEVEL": "info",
            **self.state_env,
            **self.inputs_env,
        }
        env.update({k: str(v) for k, v in extra.items()})
        svc = Service(self.binary, env, f"{self.name}-{self.tag}-{i}")
        self.replicas.append(svc)
        self.svc = self.svc or svc
        return svc

    def start(self, **extra):
        return self.replica(**extra).start()

    def close(self):
        codes = [s.stop() for s in self.replicas]
        client = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
        for db in self.dbs:
            client.drop_database(db)
        return codes

    def check_clean_exit(self, codes):
        for code, svc in zip(codes, self.replicas):
            if svc.starts and code is not None and code > 0:
                raise AssertionError(f"{svc.name} exited with {code} on SIGTERM")

    def revisions(self, target, coll=None):
        """The target's revision documents in MongoDB, oldest first."""
        c = pymongo.MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)[self.db][coll or self.coll]
        return sorted(c.find({"key": target}), key=lambda d: d["revision"])


def applier_fixture(name):
    """A pytest fixture: one Applier of `name`, closed (replicas stopped, databases
    dropped) at the end; a replica that did not exit cleanly on SIGTERM fails the test."""

    @pytest.fixture
    def fixture():
        a = Applier(name)
        yield a
        a.check_clean_exit(a.close())

    return fixture


def command(target, optimization_id, adjustments=None, cmd="APPLY", mode=None, kind="weight-recalibrator",
            **fields):
    """An encoded OptimizationCommand; type and mode default to those of `kind`."""
    rec = {
        "command_id": fields.pop("command_id", f"cmd-{cmd.lower()}-{optimization_id}"),
        "command": cmd,
        "optimization_id": optimization_id,
        "optimization_type": fields.pop("optimization_type", KINDS[kind]["type"]),
        "target": target,
        "adjustments": adjustments or {},
        "adjustment_mode": mode or KINDS[kind]["mode"],
        "reason": "integration test",
        "issued_at": int(time.time() * 1000),
    }
    rec.update(fields)
    return hive_avro.encode("OptimizationCommand", rec)


def send(topic, records, partitions=None):
    """Produces (key, value) pairs; partitions, when given, one per record."""
    p = producer()
    for i, (key, value) in enumerate(records):
        kw = {} if partitions is None else {"partition": partitions[i]}
        p.produce(topic, key=key.encode(), value=value, **kw)
    assert p.flush(30) == 0


def events(a, expected, timeout=60, settle=3.0):
    """The committed OptimizationEvents of a.applied."""
    return [hive_avro.decode("OptimizationEvent", m.value())
            for m in read_committed(a.applied, expected, timeout=timeout, settle=settle)]


def state_records(topic, record, expected, timeout=60, settle=2.0):
    """The committed state records (ConsensusWeights, ServiceSLO, OrchestratorPolicy) of `topic`."""
    return [hive_avro.decode(record, m.value())
            for m in read_committed(topic, expected, timeout=timeout, settle=settle)]


def assert_event_hash(e):
    assert e["hash"] == hive_avro.payload_hash("OptimizationEvent", e)


def new_values(e):
    return {x["parameter"]: x["new_value"] for x in e["adjustments"]}


def old_values(e):
    return {x["parameter"]: x["old_value"] for x in e["adjustments"]}
