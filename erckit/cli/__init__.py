"""The ``erckit`` command line: a thin layer over the Python API.

Every sub-command lives in its own module exposing ``add_parser(subparsers)``;
heavy imports (torch, transformers) happen inside the command's ``run``.
"""
