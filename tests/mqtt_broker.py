"""The tests' broker: the simulator's real Mosquitto (simulator/broker.py)."""

from simulator.broker import (ACL_FILE, SHIPPED_CONF, MosquittoBroker, TlsFiles, find_mosquitto,  # noqa: F401
                              free_port)
