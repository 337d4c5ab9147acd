"""The Net: built from a NetParameter by named passes into one NetGraph, run
forward and backward; weights in and out; pycaffe's scripting conveniences."""
from .graph import NetGraph
from .net import TEST, TRAIN, Net

__all__ = ["Net", "NetGraph", "TRAIN", "TEST"]
