"""The kernel both the pipeline and the service stand on: the feature contract, the interval arithmetic,
the linear-model maths, the alias record and the names of what a registered model carries.

It knows neither side: it imports numpy and pydantic only (tests/test_architecture.py holds it to that),
so a change here is a change of results, and it is part of the pipeline's code version.
"""
