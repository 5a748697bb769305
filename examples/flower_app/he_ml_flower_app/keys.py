"""Create the he_ml key material for the deployment, out of band.

Writes ``<out>/secret.ctx`` (the shared secret context: give it to the SuperNodes' operators
only) and ``<out>/public.ctx`` (for the SuperLink's ServerApp, which can add but not decrypt)::

    python -m he_ml_flower_app.keys --out keys --scheme paillier --clients 2
"""
from __future__ import annotations

import argparse
import os

from .task import MAX_VALUE, PRECISION_BITS


def write_keys(out: str, scheme: str = "paillier", clients: int = 2) -> tuple[str, str]:
    """Generate a context for ``clients`` updates of |x| <= MAX_VALUE; return (secret, public) paths."""
    from he_ml.aggregation import aggregation_context

    ctx = aggregation_context(scheme, max_clients=clients, max_value=MAX_VALUE, precision_bits=PRECISION_BITS)
    os.makedirs(out, exist_ok=True)
    secret, public = os.path.join(out, "secret.ctx"), os.path.join(out, "public.ctx")
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only: it decrypts
    with os.fdopen(fd, "wb") as f:
        f.write(ctx.to_bytes(include_secret_key=True))
    with open(public, "wb") as f:
        f.write(ctx.public_context().to_bytes())
    return secret, public


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="keys")
    ap.add_argument("--scheme", choices=["paillier", "bfv", "ckks"], default="paillier")
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args(argv)
    for path in write_keys(args.out, args.scheme, args.clients):
        print(path)


if __name__ == "__main__":
    main()
