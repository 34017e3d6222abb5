"""DTLS 1.2 with a pre-shared key between the UE and the EMSE (seed 002 6.x.2.3): the endpoints (`psk`) and
what the harness reads back from the captured datagrams (`records`: a decoded trace and the key log)."""
