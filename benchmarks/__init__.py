"""Benchmark harness: a neutral AMQP 0-9-1 load generator, a sink server and a
side-by-side runner (Pigeon vs RabbitMQ). See docs/benchmarks.md."""
