"""Subcommands of ``caffe-lite``, one module each (discovered by cli.py)."""
