#!/usr/bin/env python3
"""Create the suite's Kafka topics, idempotently (DESIGN.md, "Topics").

    python stack/topics.py                     # every topic of the design
    python stack/topics.py extra.topic ...     # those too (tests use this)
    python stack/topics.py --only a b          # just the named ones

Existing topics are left as they are; a topic whose partition count differs from
the one asked for is reported, not changed.
"""
import argparse
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

COMPACT = {"cleanup.policy": "compact"}

# topic -> extra config
TOPICS = {
    "insights.generated": {},
    "telemetry.aggregated": {},
    "consensus.decisions": {},
    "ml.features": {},
    "approvals.requests": {},
    "approvals.responses": {},
    "experiments.requests": {},
    "experiments.assignments": COMPACT,
    "experiments.results": {},
    "optimization.commands": {},
    "optimization.applied": {},
    "consensus.weights": COMPACT,
    "orchestrator.slos": COMPACT,
    "orchestrator.policies": COMPACT,
    "models.health": {},
    "models.degraded": {},
    "models.lifecycle": {},
}

# topics the services consume: each gets a dead-letter topic
CONSUMED = [
    "insights.generated",
    "telemetry.aggregated",
    "consensus.decisions",
    "ml.features",
    "approvals.responses",
    "experiments.requests",
    "experiments.results",
    "optimization.commands",
    "optimization.applied",
    "models.degraded",
]
TOPICS.update({f"{t}.dlq": {} for t in CONSUMED})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topics", nargs="*", help="extra topic names to create")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--replication", type=int, default=1)
    ap.add_argument("--only", action="store_true",
                    help="create only the named topics, not the design's")
    ap.add_argument("--compact", action="store_true",
                    help="create the named (extra) topics compacted")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()

    wanted = {} if a.only else dict(TOPICS)
    for t in a.topics:
        wanted.setdefault(t, COMPACT if a.compact else {})
    if not wanted:
        ap.error("no topics to create")

    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    try:
        md = admin.list_topics(timeout=a.timeout)
    except KafkaException as e:
        print(f"topics: cannot reach Kafka at {a.bootstrap}: {e}", file=sys.stderr)
        return 1

    for name in sorted(set(wanted) & set(md.topics)):
        n = len(md.topics[name].partitions)
        if n != a.partitions and not a.quiet:
            print(f"topics: {name} exists with {n} partitions (asked {a.partitions}); left as is")

    missing = [t for t in sorted(wanted) if t not in md.topics]
    if not missing:
        if not a.quiet:
            print(f"topics: all {len(wanted)} present")
        return 0

    new = [NewTopic(t, num_partitions=a.partitions, replication_factor=a.replication,
                    config=wanted[t]) for t in missing]
    failed, created = 0, []
    for name, fut in admin.create_topics(new, request_timeout=a.timeout).items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as e:
            err = e.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created concurrently: fine
            print(f"topics: failed to create {name}: {err}", file=sys.stderr)
            failed += 1
    if not a.quiet:
        print(f"topics: created {', '.join(sorted(created))}" if created else "topics: none created")
        print(f"topics: {len(wanted) - failed} of {len(wanted)} present")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
