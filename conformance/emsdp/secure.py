"""Protecting and checking whole EMSDP messages: which octets the MAC covers, its COUNT, which key.

One home for what the UE role and the reference HSE must agree on, on top of `crypto.protect`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from conformance.crypto.protect import Protection
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message


class KeyedSession(Protocol):
    """What protecting a message needs of a session, on either side (the UE role's, the harness HSE's): its id,
    counter scheme, Key ID and keys."""

    id: int
    scheme: int
    key_id: int
    keys: dict[str, bytes]


class MessageSecurity:
    def __init__(self, codec: Codec, binding: Mapping[str, Any]):
        self.codec = codec
        self.layout = codec.layout
        self.protection = Protection.from_binding(binding)
        self.key_names = {
            use: binding[f"protection.keys.{use}"]
            for use in ("cp_integrity", "cp_ciphering", "up_integrity", "up_ciphering")
        }

    def key(self, keys: Mapping[str, bytes], plane: str, use: str) -> bytes:
        """The session key that protects `plane` ('cp'/'up') for `use` ('integrity'/'ciphering')."""
        return keys[self.key_names[f"{plane}_{use}"]]

    def split(self, packet: Message) -> tuple[bytes, bytes]:
        """(header, body) octets of a message as the MAC covers them; the MAC itself is not included."""
        raw = bytes(packet)
        header_len = self.layout.header_bytes(packet.plane, packet.scheme)
        end = len(raw) - (self.layout.mac_bytes if self.layout.mac_present(packet.key_id) else 0)
        return raw[:header_len], raw[header_len:end]

    def count(self, packet: Message, direction: str) -> bytes:
        bits = self.layout.counter_bits[packet.plane][packet.scheme]
        return self.protection.count(packet.session_id, packet.counter, bits, direction)

    def seal(self, packet: Message, keys: Mapping[str, bytes], direction: str) -> Message:
        """The message with its MAC set: its header (Key ID, counter, Session ID) and body are final. A Key ID
        that wants no MAC (000, as the binding says) leaves the message as it is."""
        if packet.mac is None:
            return packet
        header, body = self.split(packet)
        key = self.key(keys, packet.plane, "integrity")
        return packet.with_mac(self.protection.mac(key, self.count(packet, direction), header, body))

    def verify(self, packet: Message, keys: Mapping[str, bytes], direction: str) -> bool:
        if not self.layout.mac_present(packet.key_id):
            return False
        header, body = self.split(packet)
        key = self.key(keys, packet.plane, "integrity")
        return self.protection.verify(key, self.count(packet, direction), header, body, packet.mac)

    def crypt(
        self,
        data: bytes,
        keys: Mapping[str, bytes],
        plane: str,
        session_id: int,
        counter: int,
        scheme: int,
        direction: str,
    ) -> bytes:
        """Cipher or decipher a body under the plane's ciphering key and the message's COUNT."""
        bits = self.layout.counter_bits[plane][scheme]
        count = self.protection.count(session_id, counter, bits, direction)
        return self.protection.crypt(self.key(keys, plane, "ciphering"), count, data)

    def protected_cp(
        self,
        command: str,
        tlvs: list[tuple[str, bytes]],
        keys: Mapping[str, bytes],
        *,
        session_id: int,
        counter: int,
        scheme: int,
        key_id: int,
        direction: str,
    ) -> Message:
        """A control-plane message under a session's keys (its MAC set)."""
        message = self.codec.cp(
            command,
            tlvs,
            scheme=scheme,
            key_id=key_id,
            counter=counter,
            session_id=session_id,
            mac=bytes(self.layout.mac_bytes),
        )
        return self.seal(message, keys, direction)

    def protected_up(
        self,
        data: bytes,
        keys: Mapping[str, bytes],
        *,
        session_id: int,
        counter: int,
        scheme: int,
        key_id: int,
        direction: str,
        cipher: bool,
    ) -> Message:
        """A user-plane message under a session's keys: ciphered first when `cipher`, then its MAC set."""
        if cipher:
            data = self.crypt(data, keys, "up", session_id, counter, scheme, direction)
        message = self.codec.up(
            data, scheme=scheme, key_id=key_id, counter=counter, session_id=session_id, mac=bytes(self.layout.mac_bytes)
        )
        return self.seal(message, keys, direction)

    def session_cp(
        self, session: KeyedSession, command: str | int, tlvs: list[tuple[str, bytes]], counter: int, direction: str
    ) -> Message:
        """A control-plane message of `session` under its keys and Key ID, with this counter."""
        return self.protected_cp(command, tlvs, session.keys, counter=counter, direction=direction, **_of(session))  # type: ignore[arg-type]

    def session_up(self, session: KeyedSession, data: bytes, counter: int, direction: str, *, cipher: bool) -> Message:
        """A user-plane message of `session` under its keys and Key ID, with this counter; ciphered when `cipher`."""
        return self.protected_up(
            data, session.keys, counter=counter, direction=direction, cipher=cipher, **_of(session)
        )


def _of(session: KeyedSession) -> dict[str, int]:
    """The header fields a session gives its messages."""
    return {"session_id": session.id, "scheme": session.scheme, "key_id": session.key_id}
