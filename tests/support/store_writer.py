"""A process that writes changes with their outbox events as fast as it can,
printing each change's number once its transaction has committed. The store
kill-loop test SIGKILLs it at random moments."""

from __future__ import annotations

import sys

from edge.store import Store


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    store = Store.open(path, box_id="kill-box")
    n = start
    while True:
        with store.transaction() as tx:
            tx.execute("INSERT INTO stock (sku, location, qty) VALUES (?, 'L-01', ?)", (f"K{n}", n))
            tx.append_event(
                "stock_delta",
                {
                    "sku": f"K{n}",
                    "location": "L-01",
                    "qty": n,
                    "reason": "adjust",
                    "ref": None,
                    "lot": None,
                },
            )
            # a second, larger event so a kill can land between the two appends
            tx.append_event("pick_confirmed", {"sku": f"K{n}", "n": n, "pad": "p" * (n % 4000)})
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main()
