"""Pack and ship (issue 10): what happens to picked goods after the tour.

- :mod:`edge.shipping.sscc` — the box's SSCC range: allocation that never
  reuses a serial (not after a crash, not after a restore);
- :mod:`edge.shipping.packing` (the vocabulary, pure decide),
  :mod:`edge.shipping.pack_load` (read), :mod:`edge.shipping.pack_apply`
  (write), :mod:`edge.shipping.service` — pack stations: totes in, cartons
  out, the order's ``shipment_confirmed``;
- :mod:`edge.shipping.labels` — carton labels to printers, print jobs and
  reprints;
- :mod:`edge.shipping.dock` — dock door RFID portals: ``carton_departed``,
  missing and unexpected cartons;
- :mod:`edge.shipping.inbox` — device messages into these workflows, once.

Each fact a device or a packer confirms is committed with its outbox event in
one transaction (like a PDA scan); nothing here knows bytes or HTTP.
"""
