"""`best-conformance load`: Locust, in its own process (gevent), drives our EMSDP and key-server users against the
SUT; every reply is verified, and a reply that does not verify is a Locust failure with its reason."""
