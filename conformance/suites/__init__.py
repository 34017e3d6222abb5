"""The declarative conformance suites (YAML), one folder per SUT kind, shipped as package data."""
