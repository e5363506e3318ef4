"""Judging one answer: rubrics, the grading prompt and its markers, verdict parsing, the offline
reference judge, the judgment cache key, what grading costs before it is asked, and what in an answer
addresses the grader.
"""
