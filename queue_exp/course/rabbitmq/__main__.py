"""``python -m queue_exp.course.rabbitmq stuck-worker QUEUE``: the worker process
that :func:`queue_exp.course.rabbitmq.kill_worker_mid_task` starts and kills."""

import sys

from queue_exp.course.rabbitmq.acks import main

if __name__ == "__main__":
    sys.exit(main())
