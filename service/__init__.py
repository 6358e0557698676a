"""The admissions prediction service (BentoML): the API service, the model services and what they share."""

__version__ = "0.1.0"  # the project version (pyproject.toml); shown as the API's version
