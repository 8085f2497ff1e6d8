"""The two hooks on pyzmq's authenticator: refusals are reported with the address; the folder reloads."""

from __future__ import annotations

import shutil
from pathlib import Path

import zmq
import zmq.auth

from gateway.transport.curve import WorkerAuthenticator
from shared.curve import create_pair


class Replies:
    """Stands in for the ZAP socket: keeps the replies (status code is the third frame)."""

    def __init__(self) -> None:
        self.codes: list[bytes] = []

    def send_multipart(self, frames: list[bytes]) -> None:
        self.codes.append(frames[2])


def zap_request(address: bytes, key: bytes) -> list[bytes]:
    return [b"1.0", b"1", b"", address, b"", b"CURVE", zmq.utils.z85.decode(key)]


async def test_an_unknown_key_is_refused_and_reported_with_its_address_and_the_folder_reloads(tmp_path: Path) -> None:
    accepted = tmp_path / "accepted"
    accepted.mkdir()
    known_public, _ = create_pair(tmp_path, "known")
    stranger_public, _ = create_pair(tmp_path, "stranger")
    shutil.copy(known_public, accepted)
    known = zmq.auth.load_certificate(known_public)[0]
    stranger = zmq.auth.load_certificate(stranger_public)[0]
    refusals: list[tuple[str, str]] = []
    ctx = zmq.Context()
    auth = WorkerAuthenticator(ctx, accepted, lambda reason, peer: refusals.append((reason, peer)))
    replies = Replies()
    auth.zap_socket = replies  # type: ignore[assignment]
    try:
        assert auth.reload_if_changed() and not auth.reload_if_changed()
        assert auth.accepted_keys() == {known.decode()}
        await auth.handle_zap_message(zap_request(b"10.0.0.9", known))
        await auth.handle_zap_message(zap_request(b"10.0.0.7", stranger))
        assert refusals == [("unknown_key", "10.0.0.7")]
        assert replies.codes == [b"200", b"400"]  # pyzmq's decision, untouched
        (accepted / known_public.name).unlink()
        assert auth.reload_if_changed() and auth.accepted_keys() == set()
        await auth.handle_zap_message(zap_request(b"10.0.0.9", known))
        assert refusals[-1] == ("unknown_key", "10.0.0.9")
        shutil.copy(known_public, accepted)
        assert auth.reload_if_changed() and auth.accepted_keys() == {known.decode()}
        shutil.rmtree(accepted)  # no folder: nobody, rather than the last keys read (pyzmq keeps them)
        assert auth.reload_if_changed() and auth.accepted_keys() == set()
    finally:
        ctx.term()
