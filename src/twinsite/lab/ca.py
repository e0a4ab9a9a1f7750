"""The lab's own certificate authority, so lab clients keep TLS certificate validation on."""

from __future__ import annotations

from pathlib import Path

from twinsite.proc import run


def _new_key(key: Path, out: Path, subject: str, *extra: str) -> None:
    """A new P-256 key in ``key`` and, per ``extra``, a request or a self-signed certificate in ``out``."""
    run(
        [
            "openssl",
            "req",
            *extra,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(out),
            "-subj",
            subject,
        ]
    )
    key.chmod(0o600)


def ensure_ca(ca_dir: Path) -> tuple[Path, Path]:
    """Create (once) a CA key and certificate under ``ca_dir``; return (cert, key)."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    cert, key = ca_dir / "ca.pem", ca_dir / "ca.key"
    if not (cert.exists() and key.exists()):
        _new_key(
            key,
            cert,
            "/CN=twinsite lab CA",
            "-x509",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
    return cert, key


def ensure_server_cert(ca_dir: Path, name: str, *, dns_names: list[str], ips: list[str]) -> tuple[Path, Path]:
    """A server certificate for ``name`` signed by the lab CA, valid for the given names and addresses."""
    ca_cert, ca_key = ensure_ca(ca_dir)
    cert, key, csr = ca_dir / f"{name}.pem", ca_dir / f"{name}.key", ca_dir / f"{name}.csr"
    san = ",".join([f"DNS:{d}" for d in dns_names] + [f"IP:{i}" for i in ips])
    stamp = ca_dir / f"{name}.san"
    if cert.exists() and key.exists() and stamp.exists() and stamp.read_text() == san:
        return cert, key
    _new_key(key, csr, f"/CN={dns_names[0]}")
    ext = ca_dir / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "825",
            "-extfile",
            str(ext),
        ]
    )
    stamp.write_text(san)
    return cert, key
