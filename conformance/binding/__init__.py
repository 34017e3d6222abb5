"""The binding: every value the specifications leave open, as data with its source (design.md 3).

Codecs, key derivations and suites read these values from a `Binding`; none of them hard-codes a value the
digest marks unconfirmed.
"""

from conformance.binding.loader import Alternative, Binding, BindingError, Parameter, header_bits, load_binding

__all__ = ["Alternative", "Binding", "BindingError", "Parameter", "header_bits", "load_binding"]
