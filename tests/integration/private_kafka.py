"""A private single-node KRaft broker for the fault tests.

The shared broker of the local stack (127.0.0.1:9092) is used by every other
test and must never be stopped or frozen. A test that needs to stop, freeze or
restart a broker starts its own with this module: the stack's jars
(.hive/kafka/libs) and configuration (stack/kafka/server.properties) on free
ports, with its own data directory under .hive/tmp, removed at the end.

    with PrivateKafka() as kafka:
        kafka.create_topics(["in", "out"])
        ... KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap ...
        kafka.stop(); kafka.start()        # a broker that goes away and comes back
        kafka.freeze(); kafka.thaw()       # SIGSTOP / SIGCONT: connections stay open, nothing answers
"""
import atexit
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.environ.get("HIVE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HIVE = os.path.join(ROOT, ".hive")
JVM = ["java", "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateKafka:
    """One broker+controller process on 127.0.0.1:`port` (controller on
    `controller_port`); both default to free ports."""

    def __init__(self, port=None, controller_port=None):
        self.port = port or _free_port()
        self.controller_port = controller_port or _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.dir = os.path.join(HIVE, "tmp", f"private-kafka-{uuid.uuid4().hex[:10]}")
        self.props = os.path.join(self.dir, "server.properties")
        self.proc = None
        self.frozen = False
        self.starts = 0
        atexit.register(self.destroy)

    # ---- lifecycle

    def _write_config(self):
        with open(os.path.join(ROOT, "stack", "kafka", "server.properties")) as f:
            text = f.read()
        text = text.replace("@DATA@", self.dir)
        text = re.sub(r"127\.0\.0\.1:9092\b", f"127.0.0.1:{self.port}", text)
        text = re.sub(r"127\.0\.0\.1:9093\b", f"127.0.0.1:{self.controller_port}", text)
        with open(self.props, "w") as f:
            f.write(text)

    def _java(self, *args):
        libs = os.path.join(HIVE, "kafka", "libs", "*")
        return JVM + [f"-Dkafka.logs.dir={self.dir}/logs",
                      f"-Dlog4j.configuration=file:{ROOT}/stack/kafka/log4j.properties",
                      "-cp", libs] + list(args)

    def start(self, timeout=120):
        """Starts the broker (formatting its storage the first time) and waits
        until it answers a metadata request."""
        if self.proc and self.proc.poll() is None:
            return self
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        if not os.path.exists(os.path.join(self.dir, "kafka", "meta.properties")):
            self._write_config()
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            out = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", self.props,
                                            "--ignore-formatted"), capture_output=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {out.stderr.decode()[-2000:]}")
        self.starts += 1
        log = open(os.path.join(self.dir, f"broker.{self.starts}.out"), "wb")
        self.proc = subprocess.Popen(self._java("kafka.Kafka", self.props), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.frozen = False
        self.wait_up(timeout)
        return self

    def admin(self):
        # log_level 0: a test that stops the broker expects refused connections
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def wait_up(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private kafka exited with {self.proc.returncode} (see {self.dir})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self.admin().list_topics(timeout=5).brokers:
                    return
            except (OSError, KafkaException):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"private kafka on {self.bootstrap} did not answer within {timeout} s")

    def stop(self, timeout=60):
        """Stops the broker (SIGTERM: a clean shutdown; SIGKILL after `timeout`)
        and waits for the process to end. The data stays for start()."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.thaw()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        """SIGKILL: the broker crashes."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.frozen = False

    def freeze(self):
        """SIGSTOP: the broker keeps its connections open and answers nothing."""
        if self.proc and self.proc.poll() is None and not self.frozen:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self):
        if self.proc and self.proc.poll() is None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def restart(self, timeout=120):
        self.stop()
        return self.start(timeout)

    def destroy(self):
        """Stops the broker and removes its data. Idempotent."""
        try:
            if self.proc and self.proc.poll() is None:
                self.thaw()
                self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    # ---- topics

    def create_topics(self, names, partitions=3, config=None, timeout=60):
        """Creates `names` and waits until every partition has a leader."""
        admin = self.admin()
        futures = admin.create_topics([NewTopic(n, partitions, 1, config=config or {}) for n in names])
        for fut in futures.values():
            fut.result(timeout=timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            md = admin.list_topics(timeout=10)
            if all(n in md.topics and len(md.topics[n].partitions) == partitions and
                   all(p.leader >= 0 for p in md.topics[n].partitions.values()) for n in names):
                return
            time.sleep(0.2)
        raise RuntimeError(f"topics {names} have no leaders after {timeout} s")
