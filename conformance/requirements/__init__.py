"""The requirement ledger (data: one YAML file per source) and its loader; `coverage` maps it onto the cases.

from conformance.requirements import shipped_ledger
ledger = shipped_ledger()          # Mapping[id, Requirement]; LedgerError if a file is broken
ledger["TLS-210-001"].level        # 'shall'
"""

from conformance.requirements.ledger import (
    REASONS,
    Ledger,
    LedgerError,
    Requirement,
    Source,
    Untested,
    ledger_dir,
    load_ledger,
    shipped_ledger,
)

__all__ = [
    "REASONS",
    "Ledger",
    "LedgerError",
    "Requirement",
    "Source",
    "Untested",
    "ledger_dir",
    "load_ledger",
    "shipped_ledger",
]
