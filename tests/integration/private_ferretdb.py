"""A private FerretDB for the tests that stop, kill or freeze MongoDB.

The shared FerretDB of the local stack (127.0.0.1:27017) is never touched: this
one has its own port and data directory under .hive/tmp (SQLite backend, the
flags of start_ferretdb in ./hive), and can be killed, frozen, thawed and
started again on the same port and data.
"""
import os
import shutil
import signal
import subprocess
import time

import pymongo

from conftest import ROOT, free_port

FERRETDB = os.path.join(ROOT, ".hive", "bin", "ferretdb")


class PrivateFerretDB:
    def __init__(self, tag):
        if not os.path.exists(FERRETDB):
            raise AssertionError(f"{FERRETDB} is missing: run ./hive setup")
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}"
        self.base = os.path.join(ROOT, ".hive", "tmp", "ferretdb-" + tag)
        os.makedirs(os.path.join(self.base, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.base, "state"), exist_ok=True)
        self.proc = None

    def start(self, timeout=60):
        log = open(os.path.join(self.base, "ferretdb.log"), "ab")
        self.proc = subprocess.Popen(
            [FERRETDB, "--handler=sqlite", f"--sqlite-url=file:{self.base}/data/",
             f"--listen-addr=127.0.0.1:{self.port}", f"--state-dir={self.base}/state", "--debug-addr=-",
             "--telemetry=disable", "--log-level=warn"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + timeout
        while True:
            try:
                pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=1000).admin.command("ping")
                return self
            except pymongo.errors.PyMongoError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("the private FerretDB did not start")
                time.sleep(0.2)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)
