"""
tlscert - a throw-away self-signed certificate for TLS tests.

make_cert(directory, cn) writes DIR/cert.pem and DIR/key.pem with the
openssl command line tool (a 2048-bit RSA key, valid 30 days, the
CN and a DNS subjectAltName set to cn) and returns both paths.
"""

import subprocess
from pathlib import Path


def make_cert(directory, cn="mx.example.test"):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-days", "30", "-subj", "/CN=%s" % cn,
             "-addext", "subjectAltName=DNS:%s" % cn,
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60)
        key.chmod(0o640)
    return str(cert), str(key)
