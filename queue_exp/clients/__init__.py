"""Thin helpers over the broker clients the course teaches, and nothing of the service:

* :mod:`~queue_exp.clients.kafka` - kafka-python producer and consumer, bounded reads
* :mod:`~queue_exp.clients.kafka_admin` - topics, groups and offsets (``KafkaAdminClient``)
* :mod:`~queue_exp.clients.rabbitmq` - pika connections, declares, publishes, bounded reads
* :mod:`~queue_exp.clients.rabbitmq_management` - RabbitMQ's management HTTP API
* :mod:`~queue_exp.clients.consumers` - a consumer thread per broker, one shape for both
* :mod:`~queue_exp.clients.share` - Kafka share groups: confluent-kafka's ``ShareConsumer``
  (kafka-python has none), group settings, the members as the broker lists them
* :mod:`~queue_exp.clients.streams` - RabbitMQ's stream protocol on rstream
"""
