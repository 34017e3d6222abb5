"""`serve`, the blocking entry point the CLI uses: it logs its URL, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap

from conformance.binding.loader import load_binding
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient
from tests.keyserver import CLIENT_ID

BINDING = load_binding()

SERVE = textwrap.dedent(
    """
    import logging, sys
    from conformance.binding.loader import load_binding
    from conformance.keyserver.app import create_app
    from conformance.keyserver.server import serve, server_ssl_context
    from conformance.keyserver.store import EmksStore

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    binding = load_binding()
    ca, cert, key = sys.argv[1:4]
    serve(create_app(binding, EmksStore(binding)), server_ssl_context(binding, ca=ca, cert=cert, key=key))
    """
)


def test_serve_logs_its_url_serves_and_stops_on_sigterm(tmp_path):
    certs = CertificateDirectory(tmp_path)
    server, client_pair = certs.server(), certs.client(CLIENT_ID)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(certs.ca), str(server.cert), str(server.key)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            found = re.search(r"listening on (https://\S+)", line)
            if found:
                url = found.group(1)
                break
        assert url and url.startswith("https://127.0.0.1:")
        with KeyServerClient(url, BINDING, ca=certs.ca, cert=client_pair.cert, key=client_pair.key) as client:
            assert client.register(CLIENT_ID)
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=10)[1]
        assert "Finished server process" in rest  # graceful; uvicorn then re-raises the signal it handled
        assert process.returncode in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
