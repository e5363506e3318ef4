"""What goes where, and why: each area routed to the local model or kept on the frontier (quality,
sensitivity, latency), and the volume economics behind it.
"""
