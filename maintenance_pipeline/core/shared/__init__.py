"""The floor below the engines: what the engines and the rest of the core both use, importing nothing above it (no
engine but the engines' registry, ``engines/registry.py``, a leaf; no config, no run).

* ``files.py``: the backup folder's file primitives (atomic writes, fsync, free space, trickled syncs);
* ``leftovers.py``: a backup folder held by a run (``FolderHold``) and what a killed run left there;
* ``lockfile.py``: the lock file a file database's maintenance lock holds;
* ``manifest.py``: a backup's manifest (``BackupResult``, reading, listing, pinning);
* ``reading.py``: a database read through its engine (snapshot, table counts, what a manifest records);
* ``targets.py``: what the engines read of a target (``TargetView``), to type their interface;
* ``verdicts.py``: a check's result (``Check``) and the rows check of a migration (``RowsVerdict``).
"""
