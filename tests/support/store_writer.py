"""A process that writes changes with their outbox events as fast as it can,
printing each change's number once its transaction has committed. The store
kill-loop test SIGKILLs it at random moments."""

from __future__ import annotations

import sys

from cloud_sync.events import PickConfirmed, StockDelta, StockReason
from edge.store import Store


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    store = Store.open(path, box_id="kill-box")
    n = start
    while True:
        with store.transaction() as tx:
            tx.execute("INSERT INTO stock (sku, location, qty) VALUES (?, 'L-01', ?)", (f"K{n}", n))
            tx.append(
                StockDelta(
                    sku=f"K{n}",
                    location="L-01",
                    qty=n,
                    reason=StockReason.ADJUST,
                    ref=None,
                    lot=None,
                )
            )
            # a second, larger event so a kill can land between the two appends
            tx.append(
                PickConfirmed(
                    task=f"T{n}",
                    order=None,
                    line="1",
                    sku=f"K{n}",
                    location="L-01",
                    qty=n,
                    picker="p" * (n % 4000),
                    codes=(),
                )
            )
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main()
