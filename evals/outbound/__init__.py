"""The one door out: every call to a model, judge or generator leaves the process through here.

Refusal of restricted text, redaction, the budget, the audit record, the provider call with retries and
placeholders restored; which endpoints are external; the SDK providers themselves, and their vendors'
batch APIs (``batch.py``: the same steps for each request of a batch).
"""
