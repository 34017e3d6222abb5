"""`best-conformance probe`: find the binding a SUT speaks (issue 16).

Most of EMSDP's wire format and of the key derivations below KHSE are open points: binding values the harness
assumed. The binding names, for some of them, the other values a reader of the specifications may have chosen
(`alternatives:`). The probe finds which of those the SUT uses, from a capture (offline) or by talking to it
(live), one group of parameters at a time:

- candidates.py: the candidate values of each parameter, grouped as the search takes them;
- capture.py: the datagrams of one or more pcaps, who sent them and which the SUT answered;
- offline.py: the search (layout, then AKA, then protection) and a status per parameter;
- live.py: short sessions against the SUT, chosen so that each one discriminates, captured for offline.py;
- report.py: what a lab takes away: a binding override file, JSON, a short report, a console table.
"""

from conformance.probe.offline import ProbeResult, probe_captures

__all__ = ["ProbeResult", "probe_captures"]
