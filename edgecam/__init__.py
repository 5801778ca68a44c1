"""edgecam: an always-on edge camera service for the Raspberry Pi.

Frames flow one way: source -> detector -> (tracker/events) -> sinks.
"""

__version__ = "0.1.0"
