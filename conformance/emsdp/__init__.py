"""EMSDP (TS 33.163 6.2) on the wire: layout from the binding, scapy layers, value codecs."""

from conformance.emsdp.codec import Codec
from conformance.emsdp.layout import Layout

__all__ = ["Codec", "Layout"]
