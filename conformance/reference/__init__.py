"""Reference SUTs: a faithful HSE and key server, each with a catalogue of named faults.

They are systems under test like any vendor's: the engine never imports this package and talks to them only
over the network.
"""
