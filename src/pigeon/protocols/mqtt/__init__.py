"""MQTT 3.1.1 and 5.0: a sans-IO codec (bytes <-> packets) and topic rules.

``packets`` holds the packet values, ``properties`` the 5.0 properties,
``reasons`` the reason codes and :class:`ProtocolViolation`, ``codec`` the
incremental :class:`~codec.Decoder` and :func:`~codec.encode` (bodies read in
``decoding``, written in ``encoding``, primitives in ``wire``), ``topics`` topic
name and filter rules. Nothing here imports the AMQP package.
"""
