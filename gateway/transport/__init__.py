"""The gateway's way to its workers. `interface.Transport` is what the services depend on; `router` holds
`ZmqTransport` (the ROUTER socket around the dispatcher) and `curve` the CURVE authentication of the
workers that dial it: the only gateway modules that import zmq. `loopback` is the same path in memory,
and `actions` the one interpreter of the dispatcher's actions both use.

Nothing is imported here, so that depending on the interface does not load zmq."""
