"""``pigeon bench``: an AMQP 0-9-1 load generator for any broker (RabbitMQ, LavinMQ, Pigeon).

It speaks the protocol itself from pre-encoded frames and never imports the
broker's own packages (an import-linter contract in pyproject.toml keeps it so),
so it measures every broker the same way. Nothing is imported here: ``pigeon``
start-up does not pay for the load generator.
"""
