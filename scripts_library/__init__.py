"""The script domain, without I/O: model, states, the two-person rule and hazard templates.

Pure Python only (no Flask, no Redis, no Twilio); persistence lives in ``crisis_console``.
"""
