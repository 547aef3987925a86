#!/usr/bin/env python3
"""Saves, or restores, the kernel clock's frequency and status (adjtimex), for
scripts that run a client which may steer this host's clock (ntpd-rs).

    python3 bench/adjtimex_state.py save|restore FILE
"""

import ctypes
import json
import sys

ADJ_FREQUENCY, ADJ_STATUS = 0x0002, 0x0010


class Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("rest", ctypes.c_byte * 256)]


libc = ctypes.CDLL(None, use_errno=True)
timex = Timex()
if sys.argv[1] == "save":
    libc.adjtimex(ctypes.byref(timex))
    json.dump({"freq": timex.freq, "status": timex.status}, open(sys.argv[2], "w"))
else:
    saved = json.load(open(sys.argv[2]))
    timex.modes = ADJ_FREQUENCY | ADJ_STATUS
    timex.freq, timex.status = saved["freq"], saved["status"]
    if libc.adjtimex(ctypes.byref(timex)) < 0:
        sys.exit(f"adjtimex: errno {ctypes.get_errno()}")
