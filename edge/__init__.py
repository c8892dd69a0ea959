"""PickEdge: the edge gateway of a warehouse pick zone."""

__version__ = "0.1.0"
