"""Storage: every table central keeps in ClickHouse, its keeper and its reader.

``store`` (the clients), ``schema`` (the one migration list), ``slots`` (the slot rule),
``rollup`` (the raw rollup), ``answers`` (kept slot answers), ``days`` (kept site-days),
``derived`` (those derived tables as one: what ``serve``, ``migrate`` and ``reconcile``
call), ``keeper`` (every consequence of a write), ``sitedays`` (every read of site-days).
Nothing here imports the HTTP layer or the views, and nothing outside names a derived
table (both checked by ``tests/test_imports.py``).
"""
