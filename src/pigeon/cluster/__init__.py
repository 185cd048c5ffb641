"""Cluster mode on NATS JetStream (docs/cluster.md): the local nats-server, the
connection to a cluster, and the definitions shared through a key-value bucket.

Nothing here is imported without ``--cluster``: the core never imports it, and
neither does a single node's start-up.
"""
