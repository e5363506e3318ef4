"""How far to trust the judge: calibration against people, labels, agreement, the drift canary, panels,
the judge's own noise, re-judging runs, probes, the review queue for people, and what people's scores
correct: corrected means (PPI++) and per-answer intervals (split conformal).
"""
