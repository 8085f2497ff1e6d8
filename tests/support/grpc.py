"""A gateway with its gRPC server on, and aio channels to it (same event loop as the test)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from gateway.api import keys
from tests.support.gateway import Gateway, make_config, running_gateway

GRPC_ON = ("server.grpc_enabled=true", "server.grpc_port=0", "server.host=127.0.0.1")


def grpc_config(zmq_endpoint: str, data_dir: str, *overrides: str):  # type: ignore[no-untyped-def]
    """`make_config` with gRPC on a port the OS picks (read back from the running server)."""
    return make_config(zmq_endpoint, data_dir, *GRPC_ON, *overrides)


@contextlib.asynccontextmanager
async def grpc_gateway(zmq_endpoint: str, data_dir: str, *overrides: str) -> AsyncIterator[Gateway]:
    async with running_gateway(grpc_config(zmq_endpoint, data_dir, *overrides)) as gw:
        yield gw


@contextlib.asynccontextmanager
async def channel(gw: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    """An insecure aio channel to the gateway's gRPC port."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.app[keys.GRPC].port}") as ch:
        yield ch
