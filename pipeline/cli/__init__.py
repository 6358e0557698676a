"""`python -m pipeline ...`: the command-line tools (run, runs, lineage, diff, history, aliases, promote,
rollback). They read and present results and move aliases; none of them shapes a result, so they are
outside the pipeline's code version (pipeline/provenance.py) and editing them re-runs no task."""
