"""Judging one answer: rubrics, the grading prompt and its markers, verdict parsing, the offline
reference judge, the judgment cache key, what grading costs before it is asked, and what in an answer
addresses the grader; a run's verdicts asked of a judge in the vendor's batches (``batch.py``).
"""
