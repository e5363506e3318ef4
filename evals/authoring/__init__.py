"""Writing suites: items generated from documents, reference answers from a model, people's review of a
generated suite, and weak items exported for training.
"""
