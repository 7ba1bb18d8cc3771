"""Request decoding: a batch body's JSON into validated operations and options. No I/O here.

`batch_body` decodes the request as a whole (options, batch id), `operations` each of the five
operation types, and `fields` the strict checks both use, each failure naming its field.

Internal: no stability promise. Backends and embedders import nothing from here; their public
surface is listed in `batchsvc`'s docstring.
"""
