"""One set of test helpers (issue 20), imported by every suite:

- ``paths``: the checkout and the vendored data.
- ``ports``: a free loopback port.
- ``applicants``: the sample applicant of the README, and valid applicants spread over the contract.
- ``processes``: a command run until ready on a URL, and stopped with its whole process tree.
- ``pipeline``: ``python -m pipeline run`` as a user runs it, and the session's shared run.
- ``service``: ``bentoml serve`` of the API or a model service, its environment, and the split topology.
- ``postgres``: a throw-away PostgreSQL server.
- ``shared``: set-up done once for a whole run, even with several pytest-xdist workers.
"""
