"""Label printers: ZPL II carton labels (:mod:`.zpl`), the ``~HS`` host status
(:mod:`.status`) and the link that carries both (:mod:`.client`).

The pure modules never touch a socket; the client never builds a label. None of
them knows what an order is: a carton label is an SSCC and a few strings.
"""
