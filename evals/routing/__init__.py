"""What goes where, and why: each area routed to the local model or kept on the frontier, weighing quality,
cost at the stated volume, sensitivity and latency (``route``, ``weigh``), the volume economics behind it
(``economics``), and the typed table every view reads (``records``).
"""
