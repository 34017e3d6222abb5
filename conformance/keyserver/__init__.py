"""The key-server REST model shared by the HSE's EAS-facing interface (TS 33.163 Annex B) and the EMKS of
TR 33.863 Solution #10 (design.md 2): XML documents and their schema, key stores, the ASGI app, an HTTPS
server with mutual TLS, test certificates and an httpx client. Every path, status, element name and limit
comes from the binding (`rest.*`, `tls.*`).

    schema.py   XSD rendered from keyserver.xsd.template with the binding's names
    xml.py      build / parse + validate the documents (KeyServerXml, UeKey, KeyServerXmlError)
    store.py    KeyStore protocol; EmksStore (e2m_int_key per UE, e2m_key per EMSE)
    app.py      create_app (key server), create_notification_app (push receiver)
    server.py   server_ssl_context, KeyServer (background thread), serve (blocking)
    certs.py    CertificateDirectory (CA, server and client certificates), certificate_identity
    client.py   KeyServerClient, client_ssl_context, KeyServerError
"""
