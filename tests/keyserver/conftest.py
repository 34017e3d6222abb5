import pytest

from conformance.binding import load_binding
from conformance.keyserver.certs import CertificateDirectory
from tests.keyserver import running_keyserver


@pytest.fixture(scope="module")
def ks(tmp_path_factory):
    """One EMKS per test module (default binding, certificates in a temporary directory)."""
    with running_keyserver(load_binding(), CertificateDirectory(tmp_path_factory.mktemp("certs"))) as running:
        yield running
