"""The gateway's ZeroMQ side, and the only gateway package that imports zmq: the ROUTER socket around
the dispatcher (`router`) and CURVE authentication of the workers that dial it (`curve`)."""

from gateway.transport.router import Transport

__all__ = ["Transport"]
