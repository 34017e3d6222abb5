"""best-conformance: a conformance test harness for 3GPP BEST (TS 33.163) and its key-server interfaces."""

__version__ = "0.1.0.dev0"
