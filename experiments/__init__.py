"""Thin entry points: each script parses its arguments and calls the :mod:`jaxcnn` library."""
