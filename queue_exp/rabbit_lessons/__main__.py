"""``python -m queue_exp.rabbit_lessons stuck-worker QUEUE``: the worker process
that :func:`queue_exp.rabbit_lessons.kill_worker_mid_task` starts and kills."""

import sys

from queue_exp.rabbit_lessons.acks import main

if __name__ == "__main__":
    sys.exit(main())
