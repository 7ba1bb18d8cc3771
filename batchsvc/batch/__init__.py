"""Running a decoded batch against storage, truthfully. No HTTP here.

`executor` runs a batch (in order, in parallel, or all-or-nothing), `attempts` makes one
operation's attempts against storage, `bulk` sends runs of consecutive creates or changes in
one storage call, `dependencies` says which operations wait for which, `scheduler` runs the
ready ones in parallel, `state` holds a batch's results while it runs, `validate_only` checks
a batch without writing, `deadline` bounds each call by the batch's time-out, `embeddings` makes
the vectors a batch needs in one embedder call, and `results` is what a batch reports.

Internal: no stability promise. Backends and embedders import nothing from here; their public
surface is listed in `batchsvc`'s docstring.
"""
