"""The run contract: declared fields, their resolution into one locked config, and user errors.

`fields` and `errors` are imported by models, tasks and data (they import nothing of ours);
`resolve` sits above every registry and is used by `launch.py`, the loop and experiments.
"""
