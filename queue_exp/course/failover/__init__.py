"""Replication and failover on the three-node clusters (notebooks 12 and 13):
what the cells call once the raw client code has been shown - experiments with
several threads, a killed node and timing, and their pictures.

* :mod:`~queue_exp.course.failover.kafka` - partitions' leaders and ISR, watched
  over time; ``acks='all'`` through a leader's crash
* :mod:`~queue_exp.course.failover.rabbitmq` - a quorum queue's leader and
  members; confirms and a consumer through the leader's crash; catching up
* :mod:`~queue_exp.course.failover.api` - the API's sends through a node loss
* :mod:`~queue_exp.course.failover.plots` - the pictures
* :mod:`~queue_exp.course.failover.measured` - figures kept for the side-by-side

The clusters themselves: :func:`queue_exp.brokers.cluster.use`.
"""
