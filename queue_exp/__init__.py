"""queue_exp: learn message queues by running Apache Kafka and RabbitMQ side by side.

Importing the package touches no network; see ``queue_exp.config`` for settings,
``queue_exp.server.start_api`` to run the API from a notebook, and
``python -m queue_exp brokers up`` to start the brokers.
"""

__version__ = "0.1.0"
