"""What a site engineer watches: the floor's figures per hour
(:mod:`edge.ops.hours`) and the overview the dashboard and ``pickedge status``
show (:mod:`edge.ops.overview`).

Reads of the store plus one small table of hourly figures; never imports the
HTTP layer, the CLI or the wiring. Each module here owns its SQL.
"""
