"""The promotion gate (DESIGN §16): which published set is champion, and why.

- ``gate.decide``: right after a set is published, in the training process;
- ``pointer``: the only writer of ``<model_dir>/champion.json`` (atomic, under a lock);
- ``commands``: ``promote_model.py promote SET | rollback | status``;
- ``events``: listeners called after every decision and every move of the pointer.
"""
