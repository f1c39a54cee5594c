"""Code shared by the edge agent and central: slots, names, topics, events, wire protocol.

Runs on Python 3.8 with the standard library only (the Jetson images).
"""

__all__ = ["events", "exceptions", "names", "protocol", "settings", "slots", "topics"]
