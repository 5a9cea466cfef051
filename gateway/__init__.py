"""Stopgate's service. Before any of its modules loads, :mod:`gateway.native` decides whether the
send path's compiled extensions may be used or every one of them loads from source."""

from gateway import native

native.choose()
