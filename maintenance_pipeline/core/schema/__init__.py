"""Schemas: the model (``model.py``), reading a live one (``snapshot.py``) or the reference
(``reference.py``), comparing two (``diff.py``, with the engines' type and default keys; ``sqltypes.py``
holds what those keys share)."""
