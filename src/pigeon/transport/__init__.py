"""What every protocol shares below its sans-IO logic: the asyncio glue
(:mod:`.glue`, :mod:`.listener`) behind the session interface (:mod:`.session`),
connection limits and TLS. Nothing here imports a protocol package."""
