"""What the notebooks call: one :class:`~queue_exp.course.run.Run` per notebook run
(fresh names, one clean-up), and each chapter's helpers.

* :mod:`~queue_exp.course.run` - the Run
* :mod:`~queue_exp.course.notebook` - setup checks and waits for the API's consumers
* :mod:`~queue_exp.course.kafka`, :mod:`~queue_exp.course.rabbitmq` - the two chapters
* :mod:`~queue_exp.course.streams` - a log in RabbitMQ: streams (notebook 10)
* :mod:`~queue_exp.course.share_groups` - a queue in Kafka: share groups (notebook 11)
* :mod:`~queue_exp.course.compare` - the same experiments on both brokers (notebook 08)
* :mod:`~queue_exp.course.perf` - throughput, latency and load (notebook 09, ``bench/``)
* :mod:`~queue_exp.course.failover` - replication and failover on the clusters (12, 13)
* :mod:`~queue_exp.course.exercises` - the exercises' setups and checks
"""
