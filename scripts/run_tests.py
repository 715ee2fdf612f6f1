"""`make test`: the whole suite, with the tests that bring their own brokers running
beside the others.

Most of the suite's time is spent waiting on brokers (a group to join, a node to be
declared dead, a kernel to start), not computing: alone, it keeps two cores less
than half busy. The tests that start brokers of their own — the three-node clusters
(tests/brokers/test_cluster.py, notebooks 12 and 13), the private pairs that are
stopped and restarted (tests/api/test_outage.py, tests/brokers/test_shared_mode.py)
— share nothing with the session's brokers, so they run in a second pytest process
alongside. Three steps:

1. the session's brokers up (started if none answers; stopped at the end if this
   started them);
2. tests/api alone (its browser tests time the live view to the second: nothing
   else starts JVMs meanwhile);
3. everything else, in two processes at once: the own-broker tests (their output
   is printed when they are done) and the rest.

    python scripts/run_tests.py [PYTEST ARGS...]

Arguments go to every pytest run (`-x`, `-k …`, `--junitxml=P` becomes one file per
step: P-api.xml, P-own-brokers.xml, P-rest.xml). With a test path among them it is
one plain pytest run of just that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from queue_exp import brokers  # noqa: E402 - after the path, for a plain `python scripts/…`
from queue_exp.errors import LauncherError  # noqa: E402

OWN_BROKERS = ["tests/brokers/test_cluster.py", "tests/brokers/test_shared_mode.py",
               "tests/api/test_outage.py", "notebooks/12-kafka-replication-failover.ipynb",
               "notebooks/13-rabbitmq-quorum-failover.ipynb"]
API = ["tests/api"]
NO_TESTS = 5  # pytest's exit code when a -k left nothing to run in a step


def pytest(paths: list[str], args: list[str], step: str, ignore: list[str] = (),
           **popen: object) -> subprocess.Popen:
    extra = []
    for arg in args:
        if arg.startswith("--junitxml="):
            path = Path(arg.split("=", 1)[1])
            suffix = path.suffix or ".xml"
            arg = f"--junitxml={path.with_name(f'{path.stem}-{step}{suffix}')}"
        extra.append(arg)
    command = [sys.executable, "-m", "pytest", *extra, *paths,
               *(f"--ignore={path}" for path in ignore)]
    return subprocess.Popen(command, cwd=REPO, **popen)


def failed(code: int) -> bool:
    return code not in (0, NO_TESTS)


def main(args: list[str]) -> int:
    if any(not arg.startswith("-") and (REPO / arg.split("::")[0]).exists() for arg in args):
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=REPO)
    began = time.monotonic()
    try:
        started = [name for name, entry in brokers.up().items() if entry["started"]]
    except LauncherError as exc:
        print(f"could not make both brokers reachable:\n{exc}", file=sys.stderr)
        return 3
    os.environ["QUEUE_EXP_KEEP_BROKERS"] = "1"  # the runs below leave them to this script
    codes: dict[str, int] = {}
    try:
        print("== step 1/2: tests/api", flush=True)
        codes["api"] = pytest(API, args, "api", ignore=["tests/api/test_outage.py"]).wait()
        print("== step 2/2: the rest, with the tests that start their own brokers beside it "
              "(their output follows at the end)", flush=True)
        with tempfile.TemporaryFile("w+") as log:
            own = pytest(OWN_BROKERS, args, "own-brokers", stdout=log,
                         stderr=subprocess.STDOUT)
            rest = pytest(["tests", "notebooks", "teacher"], args, "rest",
                          ignore=[*API, *OWN_BROKERS])
            codes["rest"] = rest.wait()
            codes["own brokers"] = own.wait()
            log.seek(0)
            print("== the tests that start their own brokers", flush=True)
            sys.stdout.write(log.read())
    finally:
        if started:
            brokers.down(started)
    minutes = (time.monotonic() - began) / 60
    bad = [step for step, code in codes.items() if failed(code)]
    print(f"== make test: {'FAILED in ' + ', '.join(bad) if bad else 'every step passed'} "
          f"({minutes:.1f} min)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
