"""How far to trust the judge: calibration against people, labels, agreement, the drift canary, panels,
the judge's own noise, re-judging runs, probes, and the review queue for people.
"""
