"""batchdesk: PNG renders in, named and tracked batches out, shared by a whole studio."""

__version__ = "0.1.0"
