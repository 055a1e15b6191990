"""The collector: the receiving side, in Ceilometer's word -- inputs
that are pushed to (the listener contract, and receivers of Ceilometer's
udp:// and tcp:// publishers). The bus listener is in
:mod:`telemetry_lib.notification`.
"""
