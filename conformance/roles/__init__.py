"""The active test agents the harness plays against a SUT: UE (with USIM), and later EAS, EMSE, EMKS."""
