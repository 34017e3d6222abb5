"""Robustness testing of the SUT with Hypothesis (issue 17): stateful, structure-aware fuzzing of each interface,
each finding shrunk to the minimal sequence and written as a replayable case.

    findings.py   Finding, FuzzReport, and how they are written into the run folder (fuzz.json, findings/*.yaml)
    emsdp.py      a RuleBasedStateMachine against an HSE over the UE role (fuzz_emsdp)
    keyserver.py  the key server: XSD-generated and HTTP-level mutations (fuzz_key_server)
"""
